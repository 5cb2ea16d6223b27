"""Test-side glue to the kernel oracle (``callgate.kernel.child``) for the bpf tests.

Filters are only ever installed in forked children. Programs built with
:func:`guarded` ALLOW every syscall below :data:`PROBE_NR_BASE`, so a child can
install many of them and keep running Python; the probed calls use unassigned
numbers from that base up.
"""

from __future__ import annotations

import errno
import signal
import sys
from collections.abc import Sequence

from conftest import require

from callgate.bpf import actions, opcodes as op
from callgate.bpf.insn import Insn

PROBE_NR_BASE = 1000  # x86_64 and every other table end far below this

_GUARD = (
    Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, k=0),
    Insn(op.BPF_JMP | op.BPF_JGE | op.BPF_K, 1, 0, PROBE_NR_BASE),
    Insn(op.BPF_RET | op.BPF_K, k=actions.SECCOMP_RET_ALLOW),
)


def guarded(body: Sequence[Insn]) -> list[Insn]:
    """``body`` behind a prefix that allows every nr below the probe range.

    The body starts with A = nr. Jumps are relative, so the body is unchanged.
    """
    return [*_GUARD, *body]


def require_kernel() -> None:
    """Skip locally (fail under CI) when the kernel oracle cannot run here."""
    available = sys.platform == "linux"
    if available:
        try:
            import callgate.kernel.child  # noqa: F401
        except ImportError:
            available = False
    require(available, "Linux seccomp through callgate.kernel.child")


def kernel_verdicts(programs: Sequence[Sequence[Insn]]) -> list[int]:
    """Install each program in turn in one forked child; 0 if accepted, else the errno.

    Accepted programs stay installed, so they must be harmless to the child
    (see :func:`guarded`).
    """
    from callgate.kernel.binding import SeccompInstallError, install_filter, set_no_new_privs
    from callgate.kernel.child import run_in_child

    def attempt() -> list[int]:
        set_no_new_privs()
        verdicts = []
        for program in programs:
            try:
                install_filter(program)
                verdicts.append(0)
            except SeccompInstallError as exc:
                verdicts.append(exc.errno)
        return verdicts

    return run_in_child(attempt, timeout=60).unwrap()


def expected_outcome(ret: int) -> tuple[str, int]:
    """What a probe of an unassigned syscall observes when the filter returns ``ret``.

    From ``__seccomp_filter``: ERRNO's data is capped at MAX_ERRNO (and 0 means
    "return 0"); TRAP raises SIGSYS with ``si_errno`` = data; ALLOW and LOG run the
    syscall, and TRACE and USER_NOTIF with no tracer or listener fail it, all
    with ENOSYS; KILL_* and unknown actions kill with SIGSYS.
    """
    action, data = actions.action_of(ret), actions.data_of(ret)
    if action == actions.SECCOMP_RET_ERRNO:
        return ("returned", 0) if data == 0 else ("errno", min(data, actions.MAX_ERRNO))
    if action == actions.SECCOMP_RET_TRAP:
        return ("trap", data)
    if action in (
        actions.SECCOMP_RET_ALLOW,
        actions.SECCOMP_RET_LOG,
        actions.SECCOMP_RET_TRACE,
        actions.SECCOMP_RET_USER_NOTIF,
    ):
        return ("errno", errno.ENOSYS)
    return ("killed", signal.SIGSYS)
