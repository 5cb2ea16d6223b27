"""Lab 10: a kernel filter in assembly, judged by callgate's interpreter and then by the
real kernel, installed in a forked child."""

from __future__ import annotations

import errno
import signal
from collections.abc import Iterator
from pathlib import Path

from callgate.arch import X32_SYSCALL_BIT, get_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS
from callgate.bpf.insn import Insn
from callgate.kernel.child import ChildError, SyscallOutcome, probe_syscalls
from callgate.teach.labs.asm_cases import Case, assembled, run_cases
from callgate.teach.labs.base import Check, Lab, failed, passed

X86_64 = get_arch("x86_64")
ALLOW, KILL = SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS
EPERM = SECCOMP_RET_ERRNO | errno.EPERM
QUERY = 0xFFFFFFFF  # personality(0xffffffff) only asks for the current persona
X32_UNAME = X32_SYSCALL_BIT | X86_64.number("uname")

CASES = (
    Case("uname() from a 32-bit (i386) program", "uname", (0,), KILL, call_arch="x86"),
    Case("uname() from an x32 program (nr 0x4000003f)", "uname", (0,), KILL, nr=X32_UNAME),
    Case("uname()", "uname", (0,), EPERM),
    Case("getppid()", "getppid", (), ALLOW),
    Case("personality(0xffffffff), a query", "personality", (QUERY,), ALLOW),
    Case("personality(0), a change", "personality", (0,), EPERM),
    Case("personality(0x1ffffffff): the low word is the query, the high word is not 0",
         "personality", (1 << 32 | QUERY,), EPERM),
)

#: The same calls in the real kernel (the i386 one cannot be made from here), and what
#: the kernel must do: (label, nr, args, expected outcome).
KERNEL_CALLS = (
    ("uname(NULL)", X86_64.number("uname"), (0,), SyscallOutcome("errno", errno.EPERM)),
    ("getppid()", X86_64.number("getppid"), (), None),  # returns the parent's pid
    ("personality(0xffffffff)", X86_64.number("personality"), (QUERY,), None),
    ("personality(0)", X86_64.number("personality"), (0,), SyscallOutcome("errno", errno.EPERM)),
    ("personality(0x1ffffffff)", X86_64.number("personality"), (1 << 32 | QUERY,),
     SyscallOutcome("errno", errno.EPERM)),
    ("x32 uname(NULL)", X32_UNAME, (0,), SyscallOutcome("killed", signal.SIGSYS)),
)


def outcome_text(outcome: SyscallOutcome, mood: str = "did") -> str:
    """What the kernel did with a call (``mood="should"``: what it should do)."""
    past = mood == "did"
    if outcome.kind == "errno":
        name = errno.errorcode.get(outcome.value, outcome.value)
        return f"{'failed' if past else 'fail'} with {name}"
    if outcome.kind == "killed":
        name = signal.Signals(outcome.value).name
        return f"{'killed' if past else 'kill'} the process with {name}"
    if outcome.kind == "trap":
        return f"{'raised' if past else 'raise'} SIGSYS for a handler (data {outcome.value})"
    return f"{'returned' if past else 'return'} {outcome.value}"


def check(path: Path, work: Path) -> Iterator[Check]:
    program: list[Insn] = []
    for item in assembled(path, X86_64):
        if isinstance(item, list):
            program = item
        else:
            yield item
    results = list(run_cases(path, program, X86_64, CASES))
    yield from results
    if not all(r.ok for r in results):
        yield failed("the real kernel agrees",
                     "not tried yet: fix the cases above first (a filter that is wrong in "
                     "the interpreter is wrong in the kernel too)")
        return
    calls = [(nr, args) for _label, nr, args, _want in KERNEL_CALLS]
    try:
        outcomes = probe_syscalls(program, calls)
    except ChildError as exc:
        yield failed("the real kernel agrees", f"the probing child failed: {exc}")
        return
    wrong = []
    for (label, _nr, _args, want), got in zip(KERNEL_CALLS, outcomes, strict=True):
        ok = got.kind == "returned" if want is None else got == want
        if not ok:
            wanted = "return normally" if want is None else outcome_text(want, "should")
            wrong.append(f"{label}: the kernel {outcome_text(got)}; it should {wanted}")
    if wrong:
        yield failed("the real kernel agrees", *wrong)
    else:
        yield passed("the real kernel agrees",
                     f"installed in a forked child, {len(calls)} real syscalls did what the "
                     "interpreter said")


LAB = Lab(
    number=10,
    slug="kernel-asm",
    title="A kernel filter in assembly, tried on the real kernel",
    goal="""\
Write lab10.asm, a seccomp filter for x86_64 processes, by hand:
  - KILL_PROCESS for any other ABI: another arch value (a 32-bit i386 program), and
    x32 calls, which share x86_64's arch value and set bit 0x40000000 in the number;
  - ERRNO(EPERM) for uname;
  - personality only as a query: ALLOW when its whole 64-bit argument is 0xffffffff,
    ERRNO(EPERM) otherwise;
  - ALLOW for everything else.
The checker runs 7 calls through callgate's interpreter, then installs your filter in a
forked child with seccomp(2) and makes 6 real syscalls there.""",
    hints=(
        "Names are looked up for x86_64 here: uname is 63, EPERM is Linux's 1. The arch "
        "constant is ARCH_X86_64.",
        "`if (A >= 0x40000000) goto kill` right after A = sys_number catches x32.",
        "A = args[0] loads only the low 32 bits of the argument; A = args_h[0] loads the "
        "high 32 bits. A 64-bit comparison needs both.",
        "docs/kernel-api.md installs hand-made filters the same way; `callgate compile` of "
        "a [kernel] policy with an args check shows the compiler's version.",
    ),
    handin="lab10.asm",
    starter="lab10_starter.asm",
    solution="lab10_solution.asm",
    checker=check,
    try_it=("callgate emu lab10.asm personality 0x1ffffffff",
            "callgate emu lab10.asm --arch x86 uname"),
)
