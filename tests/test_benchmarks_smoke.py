"""Smoke test of benchmarks/: every module runs once with a tiny n and behaves.

Behaviour only, never time: rows are produced, numbers are positive, ratios point at
rows that exist, unavailable rows say why, RESULTS.md is well-formed and the goals are
judged by the rules issue 7 states. A missing callgate subsystem skips locally and
fails under CI=true (``require``); a missing optional peer (extism, matplotlib) must be
reported as "not available" with the install hint, which is checked instead.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from conftest import require

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import run as bench_run  # noqa: E402
from common import (  # noqa: E402
    BIG_COLD,
    BIG_NATIVE_WARM,
    BIG_REFUSED_CLI,
    BIG_REFUSED_PLUGIN,
    BIG_WARM,
    BIG_WASMTIME_COMPILE,
    CALL_1_RULE,
    CALL_100_RULES,
    CALL_INT,
    COMPUTE_NO_LIMITS,
    COMPUTE_PLAIN,
    FILTER_1_RULE,
    FILTER_100_RULES,
    FUNC_1,
    FUNC_7,
    FUNC_CALL,
    GATED_7,
    GATED_7_COMPILED,
    HOST_FN_7,
    WARM_START,
    Row,
    measure,
)

UNITS = {"ns", "ms", "insns"}


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def collected() -> tuple[list[Row], list[str]]:
    return bench_run.collect(bench_run.QUICK_N)


@pytest.fixture(scope="module")
def rows(collected: tuple[list[Row], list[str]]) -> list[Row]:
    return collected[0]


def test_no_module_fails(collected):
    assert collected[1] == []
    assert not [r for r in collected[0] if r.group == "Failed benchmark modules"]


@pytest.mark.parametrize("module", bench_run.MODULES)
def test_every_module_exists(module):
    require((BENCH / f"{module}.py").exists(), f"benchmarks/{module}.py")


def test_measured_rows_are_positive_and_complete(rows):
    measured = [r for r in rows if r.available]
    assert len(measured) >= 30
    for row in measured:
        assert row.median_ns > 0, row
        assert row.n >= 1 and row.repeats >= 1, row
        assert row.unit in UNITS, row
        assert row.group, row
        assert all(s > 0 for s in row.samples), row
        if row.samples:
            assert len(row.samples) == row.repeats, row


def test_row_names_are_unique_and_baselines_exist(rows):
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    missing = {r.baseline for r in rows if r.baseline is not None and r.baseline not in names}
    # Only the wasmtime-py peers measured by bench_gate.py may be absent, and only without it.
    assert missing <= {FUNC_1, FUNC_7, FUNC_CALL}, missing
    require(not missing, f"benchmarks/bench_gate.py rows {sorted(missing)}")


def test_unavailable_rows_say_why(rows):
    for row in rows:
        if not row.available:
            assert row.note.startswith("not available: "), row
            assert len(row.note) > len("not available: ") + 5, row


def test_extism_rows_measured_or_install_hint(rows):
    extism_rows = [r for r in rows if r.name.startswith("Extism")]
    assert {r.name for r in extism_rows} >= {HOST_FN_7}
    for row in extism_rows:
        if importable("extism"):
            assert row.available, row
        else:
            assert "pip install -e '.[bench]'" in row.note, row


def test_filter_rows_cover_every_evaluator_on_both_policies(rows):
    names = [r.name for r in rows if r.group == "Filter evaluation alone" and r.available]
    for policy in ("small gate policy", "Docker-like profile"):
        for evaluator in (": interpreter", ": compiled", ": Evaluator"):
            assert any(n.startswith(policy) and evaluator in n for n in names), (policy,
                                                                                 evaluator)


def test_kernel_rows_compare_callgate_with_libseccomp(rows):
    path = [r for r in rows if "path length" in r.group]
    require(importable("pyseccomp"), "pyseccomp (libseccomp)")
    assert all(r.available for r in path)
    names = {r.name for r in path}
    for profile in ("Docker-like profile", "runtime baseline"):
        for who in ("callgate", "libseccomp optimize=2", "libseccomp optimize=1"):
            assert f"{profile}: {who}" in names
    cost = [r for r in rows if "cost of one syscall" in r.group]
    assert {r.name.split(":")[0] for r in cost} == {"getppid", "personality(0xffffffff)"}
    assert all(r.available for r in cost)
    compiler = [r for r in rows if r.group.startswith("Policy compiler")]
    assert len(compiler) == 6 and all(r.available for r in compiler)


def test_gate_rows_measured(rows):
    require((BENCH / "bench_gate.py").exists(), "benchmarks/bench_gate.py")
    by_name = {r.name: r for r in rows}
    for name in (FUNC_7, FUNC_CALL, GATED_7, GATED_7_COMPILED, CALL_INT,
                 "callgate gate, 7 args, denied errno(EPERM)",
                 "callgate gate, 7 args, trap → broker → allow"):
        assert name in by_name and by_name[name].available, name


def test_wasi_rows_both_sides(rows):
    wasi = [r for r in rows if r.group.startswith("WASI")]
    native = [r for r in wasi if "native" in r.name]
    assert len(native) == 3 and all(r.available for r in native)
    require(importable("callgate.gates.wasi"), "callgate's WASI provider (callgate.gates.wasi)")
    gated = [r for r in wasi if "gated" in r.name]
    assert len(gated) == 3 and all(r.available for r in gated), gated


def test_results_markdown_is_well_formed(rows, tmp_path):
    chart = tmp_path / "results.png"
    why = bench_run.write_chart(rows, chart)
    if importable("matplotlib"):
        assert why is None
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "pip install" in why
    info = bench_run.machine()
    goals = bench_run.goals(rows)
    text = bench_run.results_markdown(rows, info, goals, "python benchmarks/run.py --quick",
                                      12.0, None if why else "results.png")
    out = tmp_path / "RESULTS.md"
    out.write_text(text)
    lines = out.read_text().splitlines()
    assert lines[0] == "# Benchmark results"
    for heading in ("## Machine", "## Goals (issues 7, 13 and 14)", "## Results"):
        assert heading in lines
    for key in ("CPU", "cores", "kernel", "Python", "wasmtime (wasmtime-py)", "libseccomp",
                "extism", "date (UTC)"):
        assert any(line.startswith(f"| {key} |") for line in lines), key
    goal_lines = [line for line in lines if line.endswith("| MET |") or
                  line.endswith("| NOT MET |")]
    assert len(goal_lines) == len(goals) == 14
    for row in rows:
        escaped = row.name.replace("|", "\\|")
        assert any(line.startswith(f"| {escaped} |") for line in lines), row.name
    # Every table line of one table has the same number of cells as its header.
    cells = None
    for line in lines:
        if line.startswith("|"):
            count = len(re.findall(r"(?<!\\)\|", line))
            cells = cells or count
            assert count == cells, line
        else:
            cells = None


def test_main_writes_results_for_a_subset(tmp_path, capsys):
    out, chart = tmp_path / "R.md", tmp_path / "r.png"
    code = bench_run.main(["--quick", "--only", "bench_filter", "--output", str(out),
                           "--chart", str(chart)])
    assert code == 0
    text = out.read_text()
    assert "python benchmarks/run.py --quick" in text
    assert "compiled filter is at least 3× faster" in text
    assert "Filter evaluation alone" in capsys.readouterr().out


def test_a_failing_module_is_reported_not_hidden(monkeypatch):
    class Broken:
        @staticmethod
        def run(n: int) -> list[Row]:
            raise RuntimeError("the subsystem fell over")

    monkeypatch.setattr(bench_run.importlib, "import_module", lambda name: Broken)
    rows, failures = bench_run.collect(10, ["bench_filter", "bench_nonexistent"])
    assert failures == ["bench_filter: RuntimeError: the subsystem fell over"]
    (failed,) = [r for r in rows if r.name == "bench_filter.py"]
    assert not failed.available and "the subsystem fell over" in failed.note
    (missing,) = [r for r in rows if r.name == "bench_nonexistent.py"]
    assert "not written yet" in missing.note


# --- the goal rules, on rows made up for the purpose ----------------------------------------


def row(name: str, value: float | None, unit: str = "ns", baseline: str | None = None,
        group: str = "g") -> Row:
    if value is None:
        return Row(name, None, 0, 0, "not available: test", baseline, group, unit)
    return Row(name, value, 10, 3, "", baseline, group, unit)


def goal(goals: list, words: str):
    (found,) = [g for g in goals if words in g.text]
    return found


def test_gated_call_goal_needs_both_bounds():
    fast = bench_run.goals([row(FUNC_7, 11_000), row(GATED_7, 900, baseline=FUNC_7)])
    assert goal(fast, "cached path").met
    slow = bench_run.goals([row(FUNC_7, 11_000), row(GATED_7, 1_100, baseline=FUNC_7)])
    assert not goal(slow, "cached path").met  # 10× faster, but over 1 µs
    close = bench_run.goals([row(FUNC_7, 3_000), row(GATED_7, 600, baseline=FUNC_7)])
    assert not goal(close, "cached path").met  # under 1 µs, but only 5× faster


def test_missing_rows_are_not_met_and_say_so():
    goals = bench_run.goals([row(FUNC_7, 11_000), row(GATED_7, None)])
    for g in goals:
        assert not g.met
        assert g.measured.startswith("not measured")


def test_ratio_goals():
    goals = bench_run.goals([
        row(HOST_FN_7, 3_000), row(GATED_7, 1_000), row(FUNC_CALL, 14_000),
        row(CALL_INT, 1_500),
    ])
    assert goal(goals, "Extism").met  # exactly 3×
    assert not goal(goals, "Python→wasm").met  # 9.3×


def test_filter_path_and_wasi_goals():
    goals = bench_run.goals([
        row("p: interpreter", 3_000),
        row("p: compiled", 900, baseline="p: interpreter"),
        row("q: interpreter", 2_000),
        row("q: compiled", 1_000, baseline="q: interpreter"),
        row("A: libseccomp optimize=2", 15.0, "insns", group="path length"),
        row("A: callgate", 15.0, "insns", "A: libseccomp optimize=2", "path length"),
        row("copy 16 MiB in 64 KiB chunks: wasmtime native WASI", 30.0, "ms"),
        row("copy 16 MiB in 64 KiB chunks: callgate gated WASI", 59.0, "ms",
            "copy 16 MiB in 64 KiB chunks: wasmtime native WASI"),
    ])
    assert not goal(goals, "compiled filter").met  # q is only 2×
    assert goal(goals, "executed path").met  # equal is "no worse"
    assert goal(goals, "WASI").met


def test_policy_size_rows_cover_every_size_and_layer(rows):
    names = {r.name for r in rows if r.group.startswith("Policy size") and r.available}
    for n in ("1 rule", "10 rules", "100 rules", "1000 rules"):
        assert f"{n} on one gate: gate filter (search)" in names, n
        assert f"{n} on one gate: gated call (search, Python gate path)" in names, n
        assert f"kernel, {n} on ioctl: callgate search, executed" in names, n
        assert f"kernel, {n} on ioctl: callgate search, program" in names, n
    assert "100 rules on one gate: gate filter (chain)" in names
    kernel = {r.name: r for r in rows if r.group.startswith("Policy size: kernel")}
    # As instruction counts these are properties of the programs, not timings.
    search = kernel["kernel, 1000 rules on ioctl: callgate search, executed"].median_ns
    chain = kernel["kernel, 1000 rules on ioctl: callgate chain, executed"].median_ns
    assert search * 20 < chain


def test_start_rows_compare_with_wasmtime(rows):
    start = {r.name: r for r in rows if r.group.startswith("Start-up")}
    assert WARM_START in start and start[WARM_START].available
    assert start[WARM_START].baseline in start
    assert any(name.startswith("wasmtime-py start") for name in start)


def test_policy_size_and_warm_start_goals_are_judged_on_cpu_time():
    def timed(name, cpu, wall=None):
        return dataclasses.replace(row(name, wall or 10 * cpu), cpu_ns=cpu)

    def pair(many, one):
        return [timed(FILTER_1_RULE, 100), timed(FILTER_100_RULES, many, wall=90),
                timed(CALL_1_RULE.format(path="Python"), 400),
                timed(CALL_100_RULES.format(path="Python"), one),
                timed(WARM_START, 900_000, wall=3_000_000)]

    goals = bench_run.goals(pair(200, 900))
    assert goal(goals, "gate filter alone").met  # exactly 2× on CPU time (wall: faster)
    assert not goal(goals, "Python gate path").met  # 2.25×
    assert not goal(goals, "native gate path").met  # not measured
    assert goal(goals, "native gate path").measured.startswith("not measured")
    assert goal(goals, "warm `Plugin` start").met  # 0.9 ms of CPU, 3 ms of wall
    goals = bench_run.goals([timed(WARM_START, 1_000_001, wall=500_000)])
    assert not goal(goals, "warm `Plugin` start").met
    goals = bench_run.goals([row(FILTER_1_RULE, 100), row(FILTER_100_RULES, 150)])
    assert goal(goals, "gate filter alone").measured == "not measured (no CPU time recorded)"


def test_compute_rows_cover_every_kernel_and_setup(rows):
    compute = {r.name: r for r in rows if r.group.startswith("Compute-bound")}
    assert len(compute) == 15 and all(r.available and r.cpu_ns for r in compute.values())
    for kernel in ("sieve", "crc", "interp"):
        base = f"{kernel}: {COMPUTE_PLAIN}"
        assert compute[base].baseline is None
        assert compute[f"{kernel}: {COMPUTE_NO_LIMITS}"].baseline == base


def test_big_module_rows(rows):
    big = [r for r in rows if r.group.startswith("Big module")]
    assert len(big) == 8 and all(r.available for r in big)
    for suffix in (BIG_WASMTIME_COMPILE, BIG_COLD, BIG_NATIVE_WARM, BIG_WARM,
                   BIG_REFUSED_PLUGIN, BIG_REFUSED_CLI):
        (found,) = [r for r in big if r.name.endswith(suffix)]
        assert found.name.startswith("lines.wasm, ")  # --quick starts a small module
    goals = bench_run.goals(rows)
    assert goal(goals, "69 MB module").measured.startswith("not measured")


def test_issue_13_goals():
    def ms(name, value, baseline=None, cpu=None):
        return Row(name, value, 1, 3, "", baseline, "g", "ms", cpu_ns=cpu)

    yosys = "yosys.wasm, 69 MB: "
    compiled = yosys + BIG_WASMTIME_COMPILE
    fast = [ms(yosys + BIG_WARM, 1_900), ms(compiled, 60_000),
            ms(yosys + BIG_REFUSED_PLUGIN, 90, compiled),
            ms(yosys + BIG_REFUSED_CLI, 900, compiled)]
    goals = bench_run.goals(fast)
    assert goal(goals, "69 MB module").met and goal(goals, "unknown import").met
    slow = [ms(yosys + BIG_WARM, 2_100), ms(yosys + BIG_REFUSED_PLUGIN, 90),
            ms(yosys + BIG_REFUSED_CLI, 1_100)]
    goals = bench_run.goals(slow)
    assert not goal(goals, "69 MB module").met and not goal(goals, "unknown import").met
    small = bench_run.goals([ms("lines.wasm, 31.6 kB: " + BIG_WARM, 200)])
    assert goal(small, "69 MB module").measured.startswith("not measured")

    def kernels(cpu_ratio, wall_ratio):
        return [row for kernel in ("sieve", "crc") for row in (
            ms(f"{kernel}: {COMPUTE_PLAIN}", 100, cpu=40),
            ms(f"{kernel}: {COMPUTE_NO_LIMITS}", 100 * wall_ratio, f"{kernel}: {COMPUTE_PLAIN}",
               40 * cpu_ratio))]

    assert goal(bench_run.goals(kernels(1.05, 1.3)), "compute-bound").met  # judged on CPU
    assert not goal(bench_run.goals(kernels(1.06, 1.0)), "compute-bound").met


def test_measure_reports_per_operation_medians():
    calls = []
    median, samples = measure(lambda count: calls.append(count), inner=50, repeats=4, warmup=2)
    assert calls == [50] * 6
    assert len(samples) == 4 and median > 0
    with pytest.raises(ValueError):
        measure(lambda count: None, inner=0, repeats=1)
