"""Read the seccomp filters of a running process, as seccomp-tools' ``dump`` does.

The kernel hands a filter back through ``ptrace(PTRACE_SECCOMP_GET_FILTER, pid, n, buf)``:
the classic BPF program exactly as it was installed (the kernel keeps the original when
built with ``CONFIG_CHECKPOINT_RESTORE``), ``n = 0`` being the filter installed first (the
kernel's get_nth_filter counts from the oldest). The
caller needs ``CAP_SYS_ADMIN``, must not be under seccomp itself, and must have the
target ptrace-stopped: :func:`read_filters` attaches with ``PTRACE_SEIZE``, stops it with
``PTRACE_INTERRUPT`` (no signal is sent, so the process never sees it), reads every
filter and detaches, which lets it run on.

Filters belong to threads; ``pid`` names one (a process's main thread has its pid).
A filter installed with TSYNC is every thread's.
"""

from __future__ import annotations

import errno
import itertools
import os

from callgate.arch import native_arch
from callgate.bpf.insn import Insn, unpack
from callgate.errors import CallgateError
from callgate.kernel.binding import ffi, raw_syscall

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
_WALL = 0x40000000  # waitpid: any child, clone or not (a tracee is not our child)


class DumpError(CallgateError, OSError):
    """The filters of a process could not be read; the message says why and what to do."""


def read_filters(pid: int) -> list[list[Insn]]:
    """Every seccomp filter of thread ``pid``, in the order installed ([] if none)."""
    if pid <= 0:
        raise DumpError(errno.EINVAL, f"{pid} is not a process id")
    if pid == os.getpid():
        raise DumpError(errno.EINVAL, "a process cannot ptrace itself; give another pid")
    ptrace = native_arch().number("ptrace")
    ret, err = raw_syscall(ptrace, PTRACE_SEIZE, pid, 0, 0)
    if ret == -1:
        raise DumpError(err, _attach_message(pid, err))
    try:
        ret, err = raw_syscall(ptrace, PTRACE_INTERRUPT, pid, 0, 0)
        if ret == -1:
            raise DumpError(err, f"cannot stop process {pid}: {os.strerror(err)}")
        _wait_stopped(pid)
        return _read_all(ptrace, pid)
    finally:
        raw_syscall(ptrace, PTRACE_DETACH, pid, 0, 0)


def _wait_stopped(pid: int) -> None:
    try:
        _, status = os.waitpid(pid, _WALL)
    except ChildProcessError as exc:
        raise DumpError(errno.ESRCH, f"process {pid} is gone: {exc.strerror}") from None
    if not os.WIFSTOPPED(status):
        raise DumpError(errno.ESRCH, f"process {pid} ended while being stopped")


def _read_all(ptrace: int, pid: int) -> list[list[Insn]]:
    filters: list[list[Insn]] = []
    for index in itertools.count():
        count, err = raw_syscall(ptrace, PTRACE_SECCOMP_GET_FILTER, pid, index, 0)
        if count == -1:
            if err == errno.ENOENT:  # past the oldest filter
                return filters
            if err == errno.EINVAL and index == 0:  # not in seccomp filter mode
                return filters
            raise DumpError(err, _read_message(pid, index, err))
        buf = ffi.new("struct sock_filter[]", count)
        got, err = raw_syscall(ptrace, PTRACE_SECCOMP_GET_FILTER, pid, index, buf)
        if got == -1:
            raise DumpError(err, _read_message(pid, index, err))
        filters.append(unpack(bytes(ffi.buffer(buf, 8 * got))))
    raise AssertionError("unreachable")  # itertools.count() never ends


def _attach_message(pid: int, err: int) -> str:
    if err == errno.ESRCH:
        return f"no process {pid}"
    if err == errno.EPERM:
        return (f"not allowed to ptrace process {pid} (EPERM): run as root, or with "
                "CAP_SYS_PTRACE, and check /proc/sys/kernel/yama/ptrace_scope; a process "
                "that is already being traced cannot be attached to")
    return f"cannot attach to process {pid}: {os.strerror(err)}"


def _read_message(pid: int, index: int, err: int) -> str:
    if err == errno.EACCES:
        return ("reading a filter needs CAP_SYS_ADMIN, and a reader that is not itself "
                "under seccomp (EACCES)")
    if err == errno.EMEDIUMTYPE:
        return (f"the kernel kept no copy of filter {index} of process {pid} "
                "(CONFIG_CHECKPOINT_RESTORE is off)")
    return f"cannot read filter {index} of process {pid}: {os.strerror(err)}"
