"""Filter evaluation alone: interpreter, compiled function and constant-action cache.

Usage: ``python benchmarks/bench_filter.py [N]`` (or through ``benchmarks/run.py``).

Two programs, both compiled by callgate's policy compiler:

* a small gate policy (``SMALL_POLICY``: six WASI gates, one rule inspecting an arg),
  asked about ``fd_write(1, …)`` (the arg check runs) and ``fd_read`` (constant result);
* the ~350-syscall Docker-like profile (``policies/examples/docker-like.json``) for the
  native arch, asked about *every* syscall number of the arch in turn, so the figure is
  the average over the table, not one lucky number.

Evaluators measured (inputs prepared before timing, so only the decision is timed):

* the reference interpreter, ``interpret``, as the library calls it (it verifies each
  distinct program once and caches that, so this is the instruction walk; it is written
  to be obviously right, not fast);
* the compiled Python function (``compile_program``);
* :class:`~callgate.bpf.Evaluator`, the runtime's combination: one dict lookup for
  numbers whose result is constant, the compiled function for the rest.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from common import Row, timed_row

from callgate.arch import GATE_ARCH, Arch, native_arch
from callgate.bpf import Evaluator, Insn, SeccompData, compile_program, interpret
from callgate.policy import load_policy, load_policy_text
from callgate.policy.compiler import compile_section

GROUP = "Filter evaluation alone"
ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "policies" / "examples" / "docker-like.json"

SMALL_POLICY = """
[gates]
default = "kill_process"
[[gates.rules]]
names = ["fd_read", "fd_close", "fd_seek", "clock_time_get", "random_get"]
action = "allow"
[[gates.rules]]
names = ["fd_write"]
action = "allow"
args = [{ index = 0, op = "le", value = 2 }]
[[gates.rules]]
names = ["fd_write"]
action = "errno(EBADF)"
args = [{ index = 0, op = "gt", value = 2 }]
"""

Call = tuple[int, int, tuple[int, ...]]  # (nr, ip, six args)


def _rows(label: str, program: list[Insn], arch: Arch, calls: list[Call], constant_nrs: set[int],
          n: int, repeats: int) -> list[Row]:
    """Time each evaluator over ``calls`` (cycled); per-call medians."""
    data = [SeccompData.make(nr, arch.audit_arch, args, ip) for nr, ip, args in calls]
    function = compile_program(program)
    evaluator = Evaluator(program, arch.audit_arch, constant_nrs)
    flat = [(nr, arch.audit_arch, ip, *args) for nr, ip, args in calls]
    width = len(calls)
    rounds = max(1, n // width)  # inner = rounds * width calls per sample

    def over(fn: Callable[[object], object], items: list) -> Callable[[int], None]:
        def batch(count: int) -> None:
            for _ in range(count // width):
                for item in items:
                    fn(item)

        return batch

    def interp(record: SeccompData) -> int:
        return interpret(program, record).ret

    def compiled(item: tuple[int, ...]) -> int:
        return function(*item)

    def cached(call: Call) -> int:
        return evaluator.decide(call[0], call[1], call[2])

    inner = rounds * width
    interp_name = f"{label}: interpreter"
    slow_inner = width * max(1, rounds // 5)  # the interpreter is ~10 µs a call
    rows = [timed_row(interp_name, over(interp, data), inner=slow_inner, repeats=repeats,
                      group=GROUP, note="callgate.bpf.interpret, the reference")]
    rows.append(timed_row(f"{label}: compiled", over(compiled, flat), inner=inner,
                          repeats=repeats, group=GROUP, baseline=interp_name))
    rows.append(timed_row(f"{label}: Evaluator (constant cache, else compiled)",
                          over(cached, calls), inner=inner, repeats=repeats, group=GROUP,
                          baseline=interp_name,
                          note=f"{len(evaluator.constant)} of {len(constant_nrs)} numbers "
                               "answered from the cache"))
    return rows


def small_policy_rows(n: int, repeats: int) -> list[Row]:
    program = compile_section(load_policy_text(SMALL_POLICY).policy.gates, GATE_ARCH)
    fd_write, fd_read = GATE_ARCH.number("fd_write"), GATE_ARCH.number("fd_read")
    args = (1, 0x10000, 1, 0x10008, 0, 0)
    rows = _rows("small gate policy, fd_write(1, …) (arg check)", program, GATE_ARCH,
                 [(fd_write, 3, args)], set(GATE_ARCH.numbers.values()), n, repeats)
    evaluator = Evaluator(program, GATE_ARCH.audit_arch, GATE_ARCH.numbers.values())
    baseline = rows[0].name  # the fd_write interpreter: the same program, a longer path

    def cached(count: int) -> None:
        for _ in range(count):
            evaluator.decide(fd_read, 2, args)

    rows.append(timed_row("small gate policy, fd_read (constant): Evaluator (cache hit)", cached,
                          inner=n, repeats=repeats, group=GROUP, baseline=baseline))
    return rows


def profile_rows(n: int, repeats: int) -> list[Row]:
    arch = native_arch()
    section = load_policy(PROFILE, arch=arch.name).kernel
    program = compile_section(section, arch)
    numbers = sorted(set(arch.numbers.values()))
    calls = [(nr, 0x401000, (0,) * 6) for nr in numbers]
    label = f"Docker-like profile ({len(program)} insns), all {len(numbers)} {arch.name} numbers"
    return _rows(label, program, arch, calls, set(numbers), n, repeats)


def run(n: int) -> list[Row]:
    """Filter rows; ``n`` is about how many decisions each sample makes."""
    repeats = 15 if n >= 10_000 else 5
    return small_policy_rows(n, repeats) + profile_rows(n, repeats)


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:90} {row.median_ns:10.1f} ns  {row.note}")
