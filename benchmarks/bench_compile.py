"""Policy compiler: compile time and executed path length, callgate vs libseccomp, side by side.

Usage: ``python benchmarks/bench_compile.py [--write] [--runs N]``

* Compile time: median of N runs for the Docker-like profile
  (``policies/examples/docker-like.json``, ~350 syscalls, native arch), callgate's
  ``compile_section`` against libseccomp 2.5.4 (pyseccomp) building the same rules
  and exporting its BPF with ``CTL_OPTIMIZE=2`` (binary tree).
* Path length: instructions executed per call, averaged over every syscall number
  of the arch (args zero), counted by callgate's reference interpreter. Both
  programs are compiled *without* runc's ``-ENOSYS`` stub, which libseccomp cannot
  express; callgate's number with the stub is shown too.

``--write`` replaces the ``## Policy compiler`` section of benchmarks/RESULTS.md and
leaves every other section as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "policy"))  # the libseccomp translation the tests use

from libseccomp_oracle import average_path_length, libseccomp_program  # noqa: E402

from callgate.arch import native_arch  # noqa: E402
from callgate.bpf.actions import SECCOMP_RET_ALLOW  # noqa: E402
from callgate.policy import load_policy  # noqa: E402
from callgate.policy.compiler import compile_section  # noqa: E402
from callgate.policy.model import ArgCheck, Op, Rule, Section  # noqa: E402

PROFILE = ROOT / "policies" / "examples" / "docker-like.json"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Policy compiler"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def arg_heavy(names: list[str], default: int) -> Section:
    """Allow ``names``; the first 120 only when three arg checks (distinct per syscall) hold."""
    checked = [
        Rule(
            (name,),
            SECCOMP_RET_ALLOW,
            (ArgCheck(0, Op.EQ, i), ArgCheck(1, Op.GT, 1 << 33), ArgCheck(2, Op.MASKED_EQ, 6, 2)),
        )
        for i, name in enumerate(names[:120])
    ]
    return Section(default, (*checked, Rule(tuple(names[120:]), SECCOMP_RET_ALLOW)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()

    arch = native_arch()
    profile = load_policy(PROFILE, arch=arch.name).kernel
    same = dataclasses.replace(profile, enosys_above=None)  # what libseccomp can express
    allowed = {n for r in profile.rules if r.action == SECCOMP_RET_ALLOW for n in r.names} & set(
        arch.numbers
    )
    heavy = arg_heavy(sorted(allowed), profile.default)

    ours = compile_section(same, arch)
    ours_stub = compile_section(profile, arch)
    theirs = libseccomp_program(same, arch, optimize=2)
    theirs_default = libseccomp_program(same, arch, optimize=1)
    rows = [
        ("syscalls allowed (of the arch's)", f"{len(allowed)} of {len(arch.numbers)}", ""),
        (
            "compile time, Docker-like profile (median ms)",
            f"{median_ms(lambda: compile_section(same, arch), args.runs):.2f}",
            f"{median_ms(lambda: libseccomp_program(same, arch), args.runs):.2f}",
        ),
        (
            "compile time, 120 of them arg-checked instead (median ms)",
            f"{median_ms(lambda: compile_section(heavy, arch), args.runs):.2f}",
            f"{median_ms(lambda: libseccomp_program(heavy, arch), args.runs):.2f}",
        ),
        ("program length (instructions)", str(len(ours)), str(len(theirs))),
        (
            "average executed path, all syscall numbers (instructions)",
            f"{average_path_length(ours, arch):.2f}",
            f"{average_path_length(theirs, arch):.2f}",
        ),
        (
            "same, libseccomp default layout (CTL_OPTIMIZE=1)",
            "",
            f"{average_path_length(theirs_default, arch):.2f}",
        ),
        (
            "callgate with runc's -ENOSYS stub: length / average path",
            f"{len(ours_stub)} / {average_path_length(ours_stub, arch):.2f}",
            "",
        ),
    ]
    table = [
        HEADING,
        "",
        f"`python benchmarks/bench_compile.py --runs {args.runs}` on {platform.machine()}, "
        f"{cpu_model()} ({os.cpu_count()} cores), Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. Profile: `policies/examples/docker-like.json` resolved "
        f"for {arch.name}; libseccomp 2.5.4 via pyseccomp, `CTL_OPTIMIZE=2` unless noted. "
        "Compile time includes libseccomp's `export_bpf`.",
        "",
        "| measure | callgate | libseccomp |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {ours_value} | {theirs_value} |" for name, ours_value, theirs_value in rows),
        "",
    ]
    text = "\n".join(table)
    print(text)
    if args.write:
        write_section(text)
    return 0


def run(n: int) -> list:
    """Rows for ``benchmarks/run.py``: compile times and program length, side by side.

    Path lengths are ``bench_kernel.py``'s rows (the same oracle function, more profiles).
    ``n`` >= 10 000 takes 15 compile-time samples, less takes 3.
    """
    from common import Row, in_ms, timed_row  # benchmarks/ is on sys.path under run.py

    group = "Policy compiler (Docker-like profile)"
    runs = 15 if n >= 10_000 else 3
    arch = native_arch()
    same = dataclasses.replace(load_policy(PROFILE, arch=arch.name).kernel, enosys_above=None)
    allowed = {name for r in same.rules if r.action == SECCOMP_RET_ALLOW for name in r.names}
    heavy = arg_heavy(sorted(allowed & set(arch.numbers)), same.default)
    rows = []
    for label, section in (("compile time", same),
                           ("compile time, 120 syscalls arg-checked", heavy)):
        theirs = f"{label}: libseccomp optimize=2 (incl. export_bpf)"
        for name, compile_once, baseline in (
            (f"{label}: callgate", lambda s=section: compile_section(s, arch), theirs),
            (theirs, lambda s=section: libseccomp_program(s, arch), None),
        ):
            def batch(count: int, compile_once: Callable[[], object] = compile_once) -> None:
                for _ in range(count):
                    compile_once()

            rows.append(in_ms(timed_row(name, batch, inner=1, repeats=runs, group=group,
                                        baseline=baseline)))
    theirs = "program length: libseccomp optimize=2"
    rows.append(Row("program length: callgate", len(compile_section(same, arch)), 1, 1,
                    "without runc's -ENOSYS stub", theirs, group, "insns"))
    rows.append(Row(theirs, len(libseccomp_program(same, arch, optimize=2)), 1, 1, "", None,
                    group, "insns"))
    return rows


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, keeping the others."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(updated)


if __name__ == "__main__":
    sys.exit(main())
