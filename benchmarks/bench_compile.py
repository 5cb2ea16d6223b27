"""Policy compiler: compile time and executed path length, callgate vs libseccomp, side by side.

Usage: ``python benchmarks/bench_compile.py [N]`` prints these rows alone;
``benchmarks/run.py`` runs them with everything else and writes ``RESULTS.md``.

* Compile time: median of N runs for the Docker-like profile
  (``policies/examples/docker-like.json``, ~350 syscalls, native arch), callgate's
  ``compile_section`` against libseccomp 2.5.4 (pyseccomp) building the same rules
  and exporting its BPF with ``CTL_OPTIMIZE=2`` (binary tree).
* Program length, both compiled *without* runc's ``-ENOSYS`` stub, which libseccomp
  cannot express. Executed path lengths are ``bench_kernel.py``'s rows.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "policy"))  # the libseccomp translation the tests use

from libseccomp_oracle import (  # noqa: E402
    AVAILABLE as LIBSECCOMP,
    libseccomp_program,
)

from callgate.arch import native_arch  # noqa: E402
from callgate.bpf.actions import SECCOMP_RET_ALLOW  # noqa: E402
from callgate.policy import load_policy  # noqa: E402
from callgate.policy.compiler import compile_section  # noqa: E402
from callgate.policy.model import ArgCheck, Op, Rule, Section  # noqa: E402

PROFILE = ROOT / "policies" / "examples" / "docker-like.json"


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


def run(n: int) -> list:
    """Rows for ``benchmarks/run.py``: compile times and program length, side by side.

    Path lengths are ``bench_kernel.py``'s rows (the same oracle function, more profiles).
    ``n`` >= 10 000 takes 15 compile-time samples, less takes 3.
    """
    from common import Row, in_ms, timed_row, unavailable  # benchmarks/ is on sys.path

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
        timed = [(f"{label}: callgate", lambda s=section: compile_section(s, arch), theirs)]
        if LIBSECCOMP:
            timed.append((theirs, lambda s=section: libseccomp_program(s, arch), None))
        for name, compile_once, baseline in timed:
            def batch(count: int, compile_once: Callable[[], object] = compile_once) -> None:
                for _ in range(count):
                    compile_once()

            rows.append(in_ms(timed_row(name, batch, inner=1, repeats=runs, group=group,
                                        baseline=baseline)))
        if not LIBSECCOMP:
            rows.append(unavailable(theirs, "pyseccomp is not installed", group=group,
                                    unit="ms"))
    theirs = "program length: libseccomp optimize=2"
    rows.append(Row("program length: callgate", len(compile_section(same, arch)), 1, 1,
                    "without runc's -ENOSYS stub", theirs, group, "insns"))
    if LIBSECCOMP:
        rows.append(Row(theirs, len(libseccomp_program(same, arch, optimize=2)), 1, 1, "",
                        None, group, "insns"))
    else:
        rows.append(unavailable(theirs, "pyseccomp is not installed", group=group,
                                unit="insns"))
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:70} {row.median_ns or 0:10.2f} {row.unit}  {row.note}")
