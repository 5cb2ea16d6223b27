"""Run every benchmark side by side, print one table, write a results file and a chart.

Usage: ``python benchmarks/run.py [--quick] [--record]``

Each run writes a new ``benchmarks/results/run-DATE-TIME.md`` (and ``.png``), so trying
the benchmarks never touches what is committed; ``--record`` (not with ``--quick``)
rewrites the committed ``RESULTS.md`` and ``results.png`` instead.

All modules run in this one process, one after the other, on the same machine state;
each returns :class:`common.Row` values (medians over repeats). The output file is
generated whole: machine details, the goals of issues 7, 13 and 14 as measured (MET / NOT MET),
then one table per group. ``--quick`` shrinks every workload for a smoke run (seconds);
its numbers are not worth reading. ``docs/benchmarks.md`` explains every row.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import importlib
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    BIG_REFUSED_CLI,
    BIG_REFUSED_PLUGIN,
    BIG_WARM,
    CALL_1_RULE,
    CALL_100_RULES,
    CALL_INT,
    COMPUTE_NO_LIMITS,
    COMPUTE_PLAIN,
    FILTER_1_RULE,
    FILTER_100_RULES,
    FUNC_7,
    FUNC_CALL,
    GATED_7,
    GATED_7_COMPILED,
    HOST_FN_7,
    WARM_START,
    Row,
    ratio,
    unavailable,
)

# Run order; the table keeps it.
MODULES = ("bench_gate", "bench_verdicts", "bench_extism", "bench_filter", "bench_compile",
           "bench_kernel", "bench_wasi", "bench_worker", "bench_batch", "bench_policy_size",
           "bench_start", "bench_compute", "bench_bigmodule")
DEFAULT_N = 20_000
QUICK_N = 200
RESULTS = HERE / "RESULTS.md"
CHART = HERE / "results.png"
# Where an unrecorded run goes: one new file per run (the folder is in .gitignore).
RESULTS_DIR = HERE / "results"
# Row names containing these are peers or baselines (grey in the chart); the rest is callgate.
PEERS = ("wasmtime", "Extism", "libseccomp", "no filter", "allow-all", "in-process")


@dataclass(frozen=True)
class Goal:
    """One goal (issues 7, 13 and 14), as measured. ``met`` is False when it could not be
    measured."""

    text: str
    measured: str
    met: bool


# --- collecting -------------------------------------------------------------------------------


def collect(n: int, modules: Sequence[str] = MODULES,
            progress: Callable[[str], None] = lambda _: None) -> tuple[list[Row], list[str]]:
    """Every module's rows, in order, and the modules that failed (with their error)."""
    rows: list[Row] = []
    failures: list[str] = []
    for name in modules:
        progress(name)
        if not (HERE / f"{name}.py").exists():
            rows.append(unavailable(f"{name}.py", f"benchmarks/{name}.py is not written yet",
                                    group="Missing benchmark modules"))
            continue
        try:
            rows.extend(importlib.import_module(name).run(n))
        except Exception as exc:  # one broken module must not hide the others' rows
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            rows.append(unavailable(f"{name}.py", f"failed: {type(exc).__name__}: {exc}",
                                    group="Failed benchmark modules"))
    return rows, failures


# --- machine ----------------------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _libseccomp() -> str:
    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    path = ctypes.util.find_library("seccomp")
    if path is None:
        return "not installed"
    lib = ctypes.CDLL(path)
    lib.seccomp_version.restype = ctypes.POINTER(Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro} (via pyseccomp {_version('pyseccomp')})"


def _extism() -> str:
    try:
        import extism
    except ImportError:
        return "not installed (pip install -e '.[bench]')"
    return f"Python SDK {_version('extism')}, runtime {extism.extism_version()}"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _commit() -> str:
    head = _git("rev-parse", "--short", "HEAD")
    if head is None:
        return "unknown (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ":/callgate",
                 ":/benchmarks", ":/guests", ":/policies")  # from the top, not benchmarks/
    return head + (" (with uncommitted changes)" if dirty else "")


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    return {
        "CPU": f"{_cpu_model()} ({platform.machine()})",
        "cores": str(os.cpu_count()),
        "load average at start (1/5/15 min)": _load(),
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "wasmtime (wasmtime-py)": _version("wasmtime"),
        "libseccomp": _libseccomp(),
        "extism": _extism(),
        "callgate commit": _commit(),
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


# --- formatting -------------------------------------------------------------------------------


def format_value(row: Row, *, cpu: bool = False) -> str:
    value = row.cpu_ns if cpu else row.median_ns
    if value is None:
        return "—" if not cpu else ""
    if row.unit == "ns":
        if value >= 1e6:
            return f"{value / 1e6:.2f} ms"
        if value >= 1e3:
            return f"{value / 1e3:.2f} µs"
        return f"{value:.0f} ns"
    if row.unit == "insns":
        return f"{value:g} insns" if float(value).is_integer() else f"{value:.2f} insns"
    return f"{value:.2f} {row.unit}"


def format_spread(row: Row) -> str:
    """The samples' interquartile range relative to the median, e.g. ``±4%``."""
    if row.median_ns is None or len(row.samples) < 4 or row.median_ns <= 0:
        return ""
    q1, _, q3 = statistics.quantiles(row.samples, n=4)
    return f"±{50 * (q3 - q1) / row.median_ns:.0f}%"


def format_ratio(row: Row, by_name: dict[str, Row]) -> str:
    if row.baseline is None:
        return ""
    base = by_name.get(row.baseline)
    r = ratio(row, base) if base is not None else None
    if r is None:
        return "—"
    better, worse = ("shorter", "longer") if row.unit == "insns" else ("faster", "slower")
    return f"{r:.2f}× {better}" if r >= 1 else f"{1 / r:.2f}× {worse}"


def groups(rows: Iterable[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row.group or "Other", []).append(row)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: Sequence[Row]) -> str:
    """Markdown tables, one per group."""
    by_name = {row.name: row for row in rows}
    out = []
    for group, members in groups(rows).items():
        out += [f"### {group}", "",
                "| measure | median | spread | CPU | n × repeats | ratio | against | note |",
                "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for row in members:
            count = f"{row.n} × {row.repeats}" if row.available else ""
            out.append("| " + " | ".join(_cell(c) for c in (
                row.name, format_value(row), format_spread(row), format_value(row, cpu=True),
                count,
                format_ratio(row, by_name),
                row.baseline or "", row.note)) + " |")
        out.append("")
    return "\n".join(out)


# --- goals ------------------------------------------------------------------------------------


def _pair(rows: dict[str, Row], name: str, base: str) -> tuple[Row, Row] | str:
    """Both rows measured, or why not."""
    for wanted in (name, base):
        row = rows.get(wanted)
        if row is None:
            return f"row {wanted!r} not produced"
        if not row.available:
            return f"{wanted}: {row.note}"
    return rows[name], rows[base]


def _unmeasured(text: str, why: str) -> Goal:
    return Goal(text, f"not measured ({why})", False)


def goal_gated_call(rows: dict[str, Row], gated: str, label: str) -> Goal:
    text = f"a gated 7-arg call ({label}) takes at most 1 µs and is at least 6× faster " \
           "than a wasmtime-py `Func` call"
    pair = _pair(rows, gated, FUNC_7)
    if isinstance(pair, str):
        return _unmeasured(text, pair)
    row, base = pair
    r = ratio(row, base) or 0.0
    measured = f"{row.median_ns / 1e3:.2f} µs, {r:.1f}× faster than {base.median_ns / 1e3:.2f} µs"
    if row.cpu_ns is not None and base.cpu_ns:
        measured += (f" (CPU time: {row.cpu_ns / 1e3:.2f} µs, "
                     f"{base.cpu_ns / row.cpu_ns:.1f}× faster)")
    return Goal(text, measured, row.median_ns <= 1000 and r >= 6)


def goal_faster(rows: dict[str, Row], text: str, name: str, base: str, factor: float) -> Goal:
    pair = _pair(rows, name, base)
    if isinstance(pair, str):
        return _unmeasured(text, pair)
    row, other = pair
    r = ratio(row, other) or 0.0
    measured = f"{format_value(row)} vs {format_value(other)}: {r:.1f}× faster"
    if row.cpu_ns and other.cpu_ns:
        measured += f" (CPU time: {other.cpu_ns / row.cpu_ns:.1f}× faster)"
    return Goal(text, measured, r >= factor)


def goal_filter(rows: dict[str, Row]) -> Goal:
    text = "the compiled filter is at least 3× faster than the interpreter"
    compiled = [r for r in rows.values() if r.name.endswith(": compiled") and r.baseline]
    pairs = [_pair(rows, r.name, r.baseline) for r in compiled]
    measured = [p for p in pairs if not isinstance(p, str)]
    if not measured or len(measured) != len(pairs):
        return _unmeasured(text, "no compiled/interpreter pair measured")
    ratios = [ratio(row, base) or 0.0 for row, base in measured]
    return Goal(text, "; ".join(f"{row.name.split(':')[0]}: {r:.1f}× faster"
                                for (row, _), r in zip(measured, ratios, strict=True)),
                min(ratios) >= 3)


def goal_kernel_path(rows: dict[str, Row]) -> Goal:
    text = "the kernel filter's average executed path is no longer than libseccomp's " \
           "at optimize=2"
    ours = [r for r in rows.values()
            if "path length" in r.group and r.name.endswith(": callgate") and r.baseline]
    pairs = [_pair(rows, r.name, r.baseline) for r in ours]
    measured = [p for p in pairs if not isinstance(p, str)]
    if not measured or len(measured) != len(pairs):
        return _unmeasured(text, "no callgate/libseccomp path pair measured")
    return Goal(text, "; ".join(f"{row.name.split(':')[0]}: {row.median_ns:.2f} vs "
                                f"{base.median_ns:.2f}" for row, base in measured),
                all(row.median_ns <= base.median_ns for row, base in measured))


def goal_wasi(rows: dict[str, Row]) -> Goal:
    text = "gated WASI is within 2× of wasmtime's native WASI on 64 KiB I/O"
    gated = [r for r in rows.values() if "64 KiB chunks" in r.name and "gated" in r.name]
    if not gated or gated[0].baseline is None:
        return _unmeasured(text, "no 64 KiB copy row produced")
    pair = _pair(rows, gated[0].name, gated[0].baseline)
    if isinstance(pair, str):
        return _unmeasured(text, pair)
    row, base = pair
    slowdown = row.median_ns / base.median_ns
    return Goal(text, f"{format_value(row)} vs {format_value(base)}: {slowdown:.2f}× the "
                "native time", slowdown <= 2)


# Issue 14 states its acceptance "in one run on this machine, CPU time": its goals are
# judged on the CPU column (wall time beside it), so a busy machine does not decide them.


def goal_policy_size(rows: dict[str, Row], many: str, one: str, label: str) -> Goal:
    text = (f"(issue 14) 100 rules on one gate cost at most 2× one rule: {label} "
            "(judged on CPU time)")
    pair = _pair(rows, many, one)
    if isinstance(pair, str):
        return _unmeasured(text, pair)
    row, base = pair
    if not row.cpu_ns or not base.cpu_ns:
        return _unmeasured(text, "no CPU time recorded")
    slowdown = row.cpu_ns / base.cpu_ns
    measured = (f"{format_value(row, cpu=True)} vs {format_value(base, cpu=True)}: "
                f"{slowdown:.2f}× (wall {row.median_ns / base.median_ns:.2f}×)")
    return Goal(text, measured, slowdown <= 2)


def goal_warm_start(rows: dict[str, Row]) -> Goal:
    text = "(issue 14) a warm `Plugin` start (the second of one 31 KB module and policy in " \
           "a process) takes at most 1 ms (judged on CPU time)"
    row = rows.get(WARM_START)
    if row is None or not row.available:
        return _unmeasured(text, f"row {WARM_START!r} " + (
            "not produced" if row is None else row.note))
    if row.cpu_ns is None:
        return _unmeasured(text, "no CPU time recorded")
    measured = f"{format_value(row, cpu=True)} (wall {format_value(row)})"
    return Goal(text, measured, row.cpu_ns <= 1e6)


# Issue 13: "a 69 MB module". The start-up goal is judged only on a module this big.
BIG_MODULE_MB = 60
_SIZE_MB = re.compile(r", (\d+) MB: ")


def _suffixed(rows: dict[str, Row], suffix: str) -> Row | str:
    """The row whose name ends with ``suffix`` (bench_bigmodule prefixes its module's name
    and size), or why there is none."""
    found = [row for name, row in rows.items() if name.endswith(suffix)]
    if not found:
        return f"row {suffix!r} not produced"
    if not found[0].available:
        return f"{suffix}: {found[0].note}"
    return found[0]


def goal_big_start(rows: dict[str, Row]) -> Goal:
    text = "(issue 13) a second `callgate run` of a 69 MB module starts in under 2 s"
    warm = _suffixed(rows, BIG_WARM)
    if isinstance(warm, str):
        return _unmeasured(text, warm)
    module = warm.name.split(": ")[0]
    measured = f"{module}: {format_value(warm)}, the whole run" + (
        f" (CPU time: {format_value(warm, cpu=True)})" if warm.cpu_ns is not None else "")
    size = _SIZE_MB.search(warm.name)
    if size is None or int(size.group(1)) < BIG_MODULE_MB:
        return _unmeasured(text, f"no module of {BIG_MODULE_MB} MB or more; {measured}")
    return Goal(text, measured, warm.median_ns < 2000)


def goal_fail_fast(rows: dict[str, Row]) -> Goal:
    text = "(issue 13) a module with an unknown import is refused in under 1 s whatever its size"
    plugin, cli = _suffixed(rows, BIG_REFUSED_PLUGIN), _suffixed(rows, BIG_REFUSED_CLI)
    if isinstance(plugin, str) or isinstance(cli, str):
        return _unmeasured(text, plugin if isinstance(plugin, str) else str(cli))
    measured = (f"{plugin.name.split(': ')[0]}: `Plugin()` {format_value(plugin)}, "
                f"`callgate run` {format_value(cli)} (Python's start-up included)")
    compiling = rows.get(plugin.baseline or "")
    if compiling is not None and compiling.available:
        measured += f"; compiling it: {format_value(compiling)}"
    return Goal(text, measured, plugin.median_ns < 1000 and cli.median_ns < 1000)


def goal_compute(rows: dict[str, Row]) -> Goal:
    text = ("(issue 13) a compute-bound guest without a timeout runs within 5% of plain "
            "wasmtime, every kernel (judged on CPU time: the guest runs on the calling thread)")
    ours = [row for name, row in rows.items() if name.endswith(f": {COMPUTE_NO_LIMITS}")]
    if not ours:
        return _unmeasured(text, f"no {COMPUTE_NO_LIMITS!r} row produced")
    parts, met = [], True
    for row in ours:
        kernel = row.name.split(": ")[0]
        pair = _pair(rows, row.name, f"{kernel}: {COMPUTE_PLAIN}")
        if isinstance(pair, str):
            return _unmeasured(text, pair)
        mine, base = pair
        if mine.cpu_ns is None or not base.cpu_ns:
            return _unmeasured(text, f"{kernel}: no CPU time")
        slowdown = mine.cpu_ns / base.cpu_ns
        parts.append(f"{kernel}: {slowdown:.3f}× (wall {mine.median_ns / base.median_ns:.2f}×)")
        met = met and slowdown <= 1.05
    return Goal(text, "; ".join(parts), met)


def goals(rows: Sequence[Row]) -> list[Goal]:
    by_name = {row.name: row for row in rows}
    return [
        goal_gated_call(by_name, GATED_7, "constant allow, the cached path"),
        goal_gated_call(by_name, GATED_7_COMPILED, "arg-inspecting, the compiled path"),
        goal_faster(by_name, "a gated 7-arg call is at least 3× faster than an Extism "
                    "`host_fn` call", GATED_7, HOST_FN_7, 3),
        goal_faster(by_name, "a Python→wasm integer call is at least 10× faster than "
                    "`Func.__call__`", CALL_INT, FUNC_CALL, 10),
        goal_filter(by_name),
        goal_kernel_path(by_name),
        goal_wasi(by_name),
        goal_policy_size(by_name, FILTER_100_RULES, FILTER_1_RULE,
                         "the compiled gate filter alone"),
        goal_policy_size(by_name, CALL_100_RULES.format(path="Python"),
                         CALL_1_RULE.format(path="Python"), "a gated call, Python gate path"),
        goal_policy_size(by_name, CALL_100_RULES.format(path="native"),
                         CALL_1_RULE.format(path="native"), "a gated call, native gate path"),
        goal_warm_start(by_name),
        goal_big_start(by_name),
        goal_fail_fast(by_name),
        goal_compute(by_name),
    ]


# --- output -----------------------------------------------------------------------------------


def results_markdown(rows: Sequence[Row], info: dict[str, str], goal_list: Sequence[Goal],
                     command: str, seconds: float, chart_name: str | None) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{command}` in {seconds:.0f} s; the whole file is rewritten on every run",
        "(do not edit it by hand). Every row was measured in that one run, side by side. Times",
        "are medians over `repeats` samples of `n` operations each: \"median\" is wall-clock",
        "time, \"spread\" half the samples' interquartile range relative to the median, \"CPU\"",
        "the CPU time of this process. What each row measures and its pitfalls:",
        "[docs/benchmarks.md](../docs/benchmarks.md).",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {key} | {_cell(value)} |" for key, value in info.items()),
        "",
        "## Goals (issues 7, 13 and 14)",
        "",
        "Judged on wall-clock medians, as stated in the issue, unless a goal says otherwise.",
        "The CPU time this process",
        "spent is shown beside them: when the load average exceeds the cores, wall time",
        "includes waiting for a core and CPU time is the better estimate of the cost itself.",
        "One run is one process: between fresh processes on a quiet machine the same",
        "sub-microsecond row has been seen to differ by up to ±25% (memory layout), so a goal",
        "this close to its threshold can come out either way from run to run.",
        "",
        "| goal | measured | status |",
        "| --- | --- | --- |",
        *(f"| {_cell(g.text)} | {_cell(g.measured)} | {'MET' if g.met else 'NOT MET'} |"
          for g in goal_list),
        "",
        "## Results",
        "",
        table(rows),
    ]
    if chart_name:
        lines += [f"![median per row, by group]({chart_name})", ""]
    return "\n".join(lines)


def write_chart(rows: Sequence[Row], path: Path) -> str | None:
    """A horizontal bar chart per group (log scale); None, or why it was not drawn."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn: dict[str, list[Row]] = {}
    for row in rows:  # one panel per group and unit, so no panel mixes ms with ns
        if row.available and row.median_ns > 0:
            drawn.setdefault(f"{row.group or 'Other'} [{row.unit}]", []).append(row)
    if not drawn:
        return "no measured rows"
    heights = [max(1.2, 0.32 * len(m) + 0.8) for m in drawn.values()]
    fig, axes = plt.subplots(len(drawn), 1, figsize=(11, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (group, members) in zip(axes[:, 0], drawn.items(), strict=True):
        values = [r.median_ns for r in members]
        labels = [r.name if len(r.name) <= 70 else r.name[:67] + "…" for r in members]
        colors = ["tab:gray" if any(p in r.name for p in PEERS) else "tab:blue"
                  for r in members]
        ax.barh(range(len(members)), values, color=colors)
        ax.set_yticks(range(len(members)), labels, fontsize=7)
        ax.invert_yaxis()
        if max(values) / min(values) > 20:
            ax.set_xscale("log")
        ax.set_title(group, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def print_rows(rows: Sequence[Row]) -> None:
    by_name = {row.name: row for row in rows}
    for group, members in groups(rows).items():
        print(f"\n== {group}")
        for row in members:
            value = format_value(row)
            extra = format_ratio(row, by_name)
            print(f"  {row.name[:78]:78} {value:>13} {extra:>15}  {row.note[:60]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny workloads for a smoke run; numbers are meaningless")
    parser.add_argument("--record", action="store_true",
                        help="rewrite the committed benchmarks/RESULTS.md and results.png "
                        "(default: a new file in benchmarks/results/)")
    parser.add_argument("--output", type=Path, help="results file to write instead")
    parser.add_argument("--chart", type=Path, help="PNG chart to write instead")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run only these modules")
    args = parser.parse_args(argv)
    if args.record and (args.quick or args.only):
        parser.error("--record rewrites the committed results, which a --quick or --only "
                     "run must not: its numbers are not the whole, comparable picture")
    args.output, args.chart = output_paths(args.record, args.output, args.chart)
    if str(HERE.parent) not in sys.path:  # a fresh checkout runs without `pip install -e .`
        sys.path.insert(1, str(HERE.parent))

    n = QUICK_N if args.quick else DEFAULT_N
    start = time.monotonic()
    info = machine()
    rows, failures = collect(n, args.only or MODULES,
                             lambda name: print(f"running {name} …", file=sys.stderr, flush=True))
    seconds = time.monotonic() - start
    info["load average at end (1/5/15 min)"] = _load()
    print_rows(rows)
    goal_list = goals(rows)
    print("\n== Goals (issues 7, 13 and 14)")
    for goal in goal_list:
        print(f"  {'MET    ' if goal.met else 'NOT MET'} {goal.text}: {goal.measured}")
    why_no_chart = write_chart(rows, args.chart)
    if why_no_chart:
        print(f"no chart: {why_no_chart}", file=sys.stderr)
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "") + \
        (" --record" if args.record else "")
    chart_name = None if why_no_chart else os.path.relpath(args.chart, args.output.parent)
    args.output.write_text(results_markdown(rows, info, goal_list, command, seconds,
                                            chart_name))
    print(f"\nwrote {args.output} and {args.chart if not why_no_chart else 'no chart'} "
          f"in {seconds:.0f} s", file=sys.stderr)
    if failures:
        print("failed modules:\n  " + "\n  ".join(failures), file=sys.stderr)
    return 1 if failures else 0


def output_paths(record: bool, output: Path | None,
                 chart: Path | None) -> tuple[Path, Path]:
    """Where this run writes: the committed files with ``record``, else a new pair in
    :data:`RESULTS_DIR` named by the time (never one that exists); ``output``/``chart``
    override either."""
    if record:
        return output or RESULTS, chart or CHART
    if output is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            output = RESULTS_DIR / f"run-{stamp}{f'-{n}' if n else ''}.md"
            if not output.exists() and not output.with_suffix(".png").exists():
                break
    assert output is not None
    return output, chart or output.with_suffix(".png")


if __name__ == "__main__":
    sys.exit(main())
