"""Policy size: what N rules on one gate cost, for N = 1, 10, 100 and 1000 (issue 14, item 4).

Usage: ``python benchmarks/bench_policy_size.py [N]`` prints these rows alone;
``benchmarks/run.py`` runs them with everything else and writes ``RESULTS.md``.

The policy is N rules on one gate (or syscall), each pinning ``args[0]`` (``args[1]`` for
the kernel's ``ioctl``) to a different 64-bit value with ``eq``: the values are drawn,
seeded, from below 2**30, so no two are neighbours and none merge into a range. The
compiler makes such a run a binary search (``callgate/policy/switch.py``). Each size is
also compiled as the chain the compiler wrote before (every rule tested in turn; the
search switched off by raising ``switch.MIN_VALUES`` out of reach), side by side:

* **compiled gate filter alone**: the gate's specialised filter as the runtime calls it
  (``Evaluator.filter_for``), cycling over 100 probes: a sample of up to 50 values and
  their successors (repeated for small N), so half hit a rule and half miss (a miss is a
  chain's worst case);
* **a gated call that searches N rules**: ``guests/wasm/gatecall1.wasm`` calls its
  import ``probe1(i)`` from a wasm loop; the rules say ``errno(EACCES)`` for N values the
  loop never passes (all above 2**31) and the default allows, so every call runs the
  whole search (the tree's full depth, the chain's every rule) and is allowed. Which gate
  path ran (native C or Python) is in the note;
* **kernel filter**: the same N rules for ``ioctl`` on the native arch, allowed for
  request values, default ``errno(EPERM)``: instructions executed per call (the
  interpreter's path from instruction 0, averaged over the probes) and program length,
  for callgate's search, the chain, and libseccomp 2.5.4 at ``optimize=2``.
"""

from __future__ import annotations

import functools
import random
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from common import CALL_1_RULE, FILTER_1_RULE, Row, timed_row, unavailable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "policy"))  # the libseccomp translation the tests use

from libseccomp_oracle import AVAILABLE as LIBSECCOMP, libseccomp_program  # noqa: E402

from callgate.arch import GATE_ARCH, Arch, native_arch  # noqa: E402
from callgate.bpf import Evaluator, interpret  # noqa: E402
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO  # noqa: E402
from callgate.bpf.insn import Insn  # noqa: E402
from callgate.bpf.seccomp_data import SeccompData  # noqa: E402
from callgate.gates.app import AppGates  # noqa: E402
from callgate.native import native_status  # noqa: E402
from callgate.policy import switch  # noqa: E402
from callgate.policy.compiler import compile_section  # noqa: E402
from callgate.policy.model import ArgCheck, Op, Rule, Section  # noqa: E402
from callgate.runtime import Plugin  # noqa: E402

GUESTS = ROOT / "guests" / "wasm"
SIZES = (1, 10, 100, 1000)
GROUP_FILTER = "Policy size: compiled gate filter, N rules pinning one argument"
GROUP_CALL = "Policy size: a gated call that searches N rules"
GROUP_KERNEL = "Policy size: kernel filter (ioctl), instructions per call and program length"
EPERM = SECCOMP_RET_ERRNO | 1
EACCES_WASI = SECCOMP_RET_ERRNO | 2
PROBE1 = 0x1001
PROBES = 100  # calls per pass over the probes, whatever N


def filter_row(n: int, how: str = "search") -> str:
    """The compiled-filter row for ``n`` rules (run.py's goals read those in common.py)."""
    return FILTER_1_RULE.replace("1 rule", f"{n} rule{'s' if n > 1 else ''}").replace(
        "(search)", f"({how})")


def call_row(n: int, how: str = "search", path: str = "Python") -> str:
    return CALL_1_RULE.format(path=path).replace(
        "1 rule", f"{n} rule{'s' if n > 1 else ''}").replace("(search,", f"({how},")


@contextmanager
def chains() -> Iterator[None]:
    """Compile the way the compiler did before the search: every rule in turn."""
    saved = switch.MIN_VALUES
    switch.MIN_VALUES = 1 << 62
    try:
        yield
    finally:
        switch.MIN_VALUES = saved


def values(n: int, low: int = 0) -> list[int]:
    return random.Random(n).sample(range(low, low + (1 << 30)), n)


def pinned(name: str, index: int, vals: list[int], action: int, default: int) -> Section:
    return Section(default, tuple(Rule((name,), action, (ArgCheck(index, Op.EQ, v),))
                                  for v in vals))


def _program(section: Section, arch: Arch, how: str) -> list[Insn]:
    if how == "chain":
        with chains():
            return compile_section(section, arch)
    return compile_section(section, arch)


# -- the compiled filter alone -----------------------------------------------------------------


def filter_rows(inner: int, repeats: int) -> list[Row]:
    nr, arch = GATE_ARCH.number("fd_write"), GATE_ARCH.audit_arch
    rows = []
    for n in SIZES:
        vals = values(n)
        sample = random.Random(n + 1).sample(vals, min(n, 50))
        probes = [(nr, arch, 0, a, 0, 0, 0, 0, 0) for v in sample for a in (v, v + 1)]
        probes = (probes * (PROBES // len(probes)))[:PROBES]  # one loop shape for every N
        section = pinned("fd_write", 0, vals, SECCOMP_RET_ALLOW, EPERM)
        for how in ("search", "chain") if n > 1 else ("search",):
            program = _program(section, GATE_ARCH, how)
            run = Evaluator(program, arch, GATE_ARCH.numbers.values()).filter_for(nr)

            def batch(count: int, run: Callable[..., int] = run,
                      probes: Sequence[tuple[int, ...]] = probes) -> None:
                for _ in range(count // len(probes)):
                    for p in probes:
                        run(*p)

            slow = how == "chain" and n >= 100
            count = len(probes) * max(1, (inner // 20 if slow else inner) // len(probes))
            rows.append(timed_row(
                filter_row(n, how), batch, inner=count, repeats=repeats, group=GROUP_FILTER,
                baseline=filter_row(1) if how == "search" and n > 1 else
                (filter_row(n) if how == "chain" else None),
                note=f"{len(program)} insns; {len(set(probes))} probes, half hits, half misses"))
    return rows


# -- a real gated call -------------------------------------------------------------------------


def _gates() -> AppGates:
    gates = AppGates()
    gates.add("probe1", lambda call, a0: a0, params=("i64",), results=("i64",), number=PROBE1,
              uses_memory=False)
    return gates


@contextmanager
def gate_path(native: bool) -> Iterator[tuple[bool, str]]:
    """Plugins made inside bind their gates to the native core or to Python: ``(possible,
    what runs, or why it cannot)``. The switch is the runtime's process-wide one."""
    from callgate.runtime import dispatch

    built = getattr(dispatch, "NATIVE", None)
    if built is None:
        yield (not native, "Python gate path" if not native else
               "the native gate core is not in this checkout")
        return
    if native and not built:
        yield False, native_status().describe()
        return
    dispatch.NATIVE = native
    try:
        yield True, "native gate core" if native else "Python gate path"
    finally:
        dispatch.NATIVE = built


def call_rows(inner: int, repeats: int) -> list[Row]:
    gate_arch = Arch("callgate", GATE_ARCH.audit_arch, {**GATE_ARCH.numbers, "probe1": PROBE1})
    rows = []
    for native in (False, True):
        path = "native" if native else "Python"
        for n in SIZES:
            section = pinned("probe1", 0, values(n, low=1 << 31), EACCES_WASI,
                             SECCOMP_RET_ALLOW)
            for how in ("search", "chain") if n >= 100 and not native else ("search",):
                name = call_row(n, how, path)
                baseline = (call_row(1, "search", path) if how == "search" and n > 1 else
                            call_row(n, "search", path) if how == "chain" else None)
                with gate_path(native) as (possible, described):
                    if not possible:
                        rows.append(unavailable(name, described, group=GROUP_CALL,
                                                baseline=baseline))
                        continue
                    program = _program(section, gate_arch, how)
                    plugin = Plugin(GUESTS / "gatecall1.wasm", gates=_gates(), policy=program)
                count = max(10, inner // 50) if how == "chain" else inner
                rows.append(timed_row(
                    name, functools.partial(plugin.call_int, "run"), inner=count,
                    repeats=repeats, group=GROUP_CALL, baseline=baseline,
                    note=f"{described}; {len(program)} insns; every call misses all {n} "
                         "and is allowed"))
                counts = plugin.counters["probe1"]
                plugin.close()
                if counts["allow"] != (repeats + 1) * count:
                    raise RuntimeError(f"{name}: expected every call allowed, got {counts}")
    return rows


# -- the kernel filter -------------------------------------------------------------------------


def _executed(program: list[Insn], arch: Arch, calls: list[SeccompData]) -> float:
    return statistics.mean(len(interpret(program, c).path) for c in calls)


def _built(build: Callable[..., list[Insn]], *args: object) -> tuple[list[Insn] | None, str]:
    """``(build(*args), "")``, or ``(None, why not)`` when it cannot be built."""
    try:
        return build(*args), ""
    except Exception as exc:  # over 4096 instructions, or libseccomp refusing it
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def kernel_rows() -> list[Row]:
    arch = native_arch()
    ioctl = arch.number("ioctl")
    rows = []
    for n in SIZES:
        vals = values(n)
        section = pinned("ioctl", 1, vals, SECCOMP_RET_ALLOW, EPERM)
        sample = vals if n <= 100 else random.Random(n + 2).sample(vals, 100)
        calls = [SeccompData.make(ioctl, arch.audit_arch, [0, a]) for v in sample
                 for a in (v, v + 1)]
        label = f"kernel, {n} rule{'s' if n > 1 else ''} on ioctl"
        programs = [("callgate search", *_built(_program, section, arch, "search"))]
        if n > 1:  # one rule is no run: the chain is the same program
            program, why = _built(_program, section, arch, "chain")
            programs.append(("callgate chain", program, why or "the layout before the search"))
        programs.append(("libseccomp optimize=2", *(_built(libseccomp_program, section, arch)
                                                    if LIBSECCOMP else
                                                    (None, "pyseccomp is not installed"))))
        for who, program, note in programs:
            executed, length = f"{label}: {who}, executed", f"{label}: {who}, program"
            base_executed = f"{label}: callgate search, executed"
            base_length = f"{label}: callgate search, program"
            if program is None:
                rows += [unavailable(executed, note, group=GROUP_KERNEL, unit="insns"),
                         unavailable(length, note, group=GROUP_KERNEL, unit="insns")]
                continue
            first = who == "callgate search"
            rows.append(Row(executed, _executed(program, arch, calls), len(calls), 1,
                            note or f"average over {len(calls)} calls, half allowed",
                            None if first else base_executed, GROUP_KERNEL, "insns"))
            rows.append(Row(length, float(len(program)), 1, 1, note,
                            None if first else base_length, GROUP_KERNEL, "insns"))
    return rows


def run(n: int) -> list[Row]:
    """Rows for ``benchmarks/run.py``; ``n`` is about how many calls each sample makes."""
    repeats = 15 if n >= 10_000 else 3
    return filter_rows(n, repeats) + call_rows(max(n, 100), repeats) + kernel_rows()


if __name__ == "__main__":
    from run import format_value  # benchmarks/ is on sys.path when run from there

    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:70} {format_value(row):>12}  {row.note}")
