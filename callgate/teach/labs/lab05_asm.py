"""Lab 5: a gate filter in cBPF assembly, by hand: emu cases, then a real guest under it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from callgate.arch import GATE_ARCH
from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS
from callgate.bpf.insn import Insn
from callgate.teach.labs.asm_cases import Case, assembled, run_cases
from callgate.teach.labs.base import Check, Lab, failed, passed
from callgate.teach.labs.runner import run_command

ALLOW, KILL = SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS
EBADF = SECCOMP_RET_ERRNO | WASI_ERRNO["EBADF"]
ENOSYS = SECCOMP_RET_ERRNO | WASI_ERRNO["ENOSYS"]

CASES = (
    Case("a real x86_64 write(1, …) sent to a gate filter", "write", (1,), KILL,
         call_arch="x86_64"),
    Case("args_sizes_get", "args_sizes_get", (), ALLOW),
    Case("args_get", "args_get", (), ALLOW),
    Case("fd_write(1, …)", "fd_write", (1, 0, 1, 0), ALLOW),
    Case("fd_write(2, …)", "fd_write", (2, 0, 1, 0), ALLOW),
    Case("fd_write(0, …)", "fd_write", (0, 0, 1, 0), EBADF),
    Case("fd_write(3, …)", "fd_write", (3, 0, 1, 0), EBADF),
    Case("fd_fdstat_get(1, …)", "fd_fdstat_get", (1, 0), ALLOW),
    Case("fd_fdstat_get(2, …)", "fd_fdstat_get", (2, 0), ALLOW),
    Case("fd_fdstat_get(5, …)", "fd_fdstat_get", (5, 0), EBADF),
    Case("proc_exit(0)", "proc_exit", (0,), ALLOW),
    Case("fd_read(0, …)", "fd_read", (0, 0, 1, 0), ENOSYS),
    Case("path_open(3, …)", "path_open", (3, 1, 0, 9, 0, 0), ENOSYS),
    Case("random_get", "random_get", (0, 16), ENOSYS),
)


def check(path: Path, work: Path) -> Iterator[Check]:
    program: list[Insn] = []
    for item in assembled(path, GATE_ARCH):
        if isinstance(item, list):
            program = item
        else:
            yield item
    yield from run_cases(path, program, GATE_ARCH, CASES)

    run = run_command("lines", program, ["2"])
    if run.stdout == "line 1\nline 2\n" and run.exit_code == 0:
        yield passed("`lines 2` runs under it and prints two lines")
    else:
        yield failed("`lines 2` runs under it and prints two lines", *run.summary())
    run = run_command("lines", program, [])
    if run.stderr == "usage: lines N [TEXT]\n" and run.exit_code == 2:
        yield passed("`lines` (no argument) prints its usage on stderr")
    else:
        yield failed("`lines` (no argument) prints its usage on stderr", *run.summary())


LAB = Lab(
    number=5,
    slug="asm",
    title="A gate filter in cBPF assembly, by hand",
    goal="""\
Write lab05.asm, a gate filter for lines.wasm in seccomp-tools' assembly, without the
policy compiler. It must answer:
  - KILL_PROCESS to any call whose arch is not ARCH_CALLGATE;
  - ALLOW to args_sizes_get, args_get and proc_exit;
  - ALLOW to fd_write and fd_fdstat_get on fd 1 or 2, ERRNO(EBADF) on any other fd;
  - ERRNO(ENOSYS) to every other gate.
The checker runs 14 calls through it in callgate's interpreter (as `callgate emu` does),
then runs lines.wasm under it.""",
    hints=(
        "Start from the tutorial's stdout-only.asm ('Filters up close'): arch check, then "
        "A = sys_number and one `if (A == name) goto label` per gate.",
        "Names are looked up for the gate arch: fd_write is gate 26, EBADF is WASI's 8, "
        "ENOSYS WASI's 52.",
        "A = args[0] loads the low 32 bits of the first argument; `if (A > 2) goto bad` "
        "and `if (A < 1) goto bad` bound it.",
        "`callgate emu lab05.asm fd_write 2` shows the path one call takes; "
        "`callgate disasm` of `callgate compile POLICY --layer gates -o F` shows how the "
        "compiler does it.",
    ),
    handin="lab05.asm",
    starter="lab05_starter.asm",
    solution="lab05_solution.asm",
    checker=check,
    try_it=("callgate emu lab05.asm fd_write 3", "callgate run {lines} --policy lab05.asm -- 2"),
)
