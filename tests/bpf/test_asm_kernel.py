"""Assembled text means, to the real kernel, what it says; and ``emu`` predicts it.

The filter is installed in a forked child. It allows every syscall below 1000 (so
the child keeps running) and judges calls to the unassigned number 1000 by their
arguments; each expected outcome is read off the text by hand.
"""

from __future__ import annotations

import errno
import signal

from bpf_oracle import require_kernel

from callgate.asm.assembler import assemble
from callgate.cli import main

TEXT = """
    A = sys_number
    A < 1000 ? allow : next        # the child's own syscalls
    A != 1000 ? kill : next
    A = args[0]
    if (A == 1) goto eperm
    if (A & 0x4) goto trap
    A = args_h[1]
    if (A > 0x0) goto kill
    A = args[1]
    A >= 7 ? errno_seven : allow
eperm:
    return ERRNO(EPERM)
trap:
    return TRAP(5)
errno_seven:
    return ERRNO(7)
allow:
    return ALLOW
kill:
    return KILL_PROCESS
"""

# (args, what the probe observes, what emu prints)
CASES = [
    ((1,), ("errno", errno.EPERM), "ERRNO(1)"),
    ((4,), ("trap", 5), "TRAP(5)"),
    ((0, 1 << 32), ("killed", signal.SIGSYS), "KILL_PROCESS"),
    ((0, 9), ("errno", 7), "ERRNO(7)"),
    ((0, 6), ("errno", errno.ENOSYS), "ALLOW"),  # ALLOW of an unassigned nr: ENOSYS
]


def test_kernel_runs_the_assembled_text_as_written(tmp_path, capsys):
    require_kernel()
    from callgate.kernel.child import probe_syscalls

    program = assemble(TEXT, "x86_64")
    observed = probe_syscalls(program, [(1000, args) for args, _, _ in CASES])
    assert [tuple(o) for o in observed] == [outcome for _, outcome, _ in CASES]

    source = tmp_path / "filter.asm"
    source.write_text(TEXT)
    for args, _, action in CASES:
        assert main(["emu", str(source), "1000", *map(str, args), "-a", "x86_64", "-q"]) == 0
        assert capsys.readouterr().out.startswith(f"return {action} at line ")
