"""Which host syscalls the learning run made, watched from outside its process.

The learning run's process marks the span worth learning from: from the moment the
plugin is compiled and instantiated - where ``callgate run --kernel`` would lock down -
to the moment ``_start`` returns. Everything before is start-up the kernel filter never
sees; the exit afterwards is covered by the runtime baseline. Two ways to watch:

* ``strace`` (preferred when installed): ``strace -f`` of the whole process, with the
  marker syscalls of :mod:`callgate.kernel.strace` - the same ones the runtime baseline
  is measured with - bracketing the span;
* ``user_notif``: at the start of the span the run's process installs a seccomp filter
  whose only answer is ``USER_NOTIF`` (:func:`notify_everything`), on every thread
  (TSYNC). It hands nothing over: the parent finds the listener in ``/proc/PID/fd`` and
  takes a copy with ``pidfd_getfd``, so the child makes no syscall the parent is not
  already listening to. A :class:`~callgate.kernel.supervisor.Supervisor` then counts
  each syscall and lets it run (``CONTINUE``: the decision depends on nothing the target
  could change). The filter lives and dies with that child process.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import time
from pathlib import Path

from callgate.arch import native_arch
from callgate.bpf.actions import SECCOMP_RET_USER_NOTIF
from callgate.kernel.binding import (
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
    Notification,
    install_filter,
    raw_syscall,
    set_no_new_privs,
)
from callgate.kernel.strace import (
    BEGIN_MARKER,
    END_MARKER,
    StraceUnavailable,
    steady_state,
    strace_prefix,
)
from callgate.kernel.supervisor import Supervisor, TargetMemory, Verdict
from callgate.policy.compiler import compile_section
from callgate.policy.model import Section

METHODS = ("strace", "user_notif")
NOTIFY_LINK = "anon_inode:seccomp notify"  # what /proc/PID/fd/N says of a listener


class KernelTraceUnavailable(StraceUnavailable):
    """The host syscalls of the learning run cannot be watched here."""


def choose_method(method: str) -> str:
    """``auto`` is strace when installed, else USER_NOTIF; anything else is checked."""
    if method == "auto":
        return "strace" if shutil.which("strace") else "user_notif"
    if method not in METHODS:
        raise KernelTraceUnavailable(f"unknown way to watch syscalls {method!r}; use auto, "
                                     f"{' or '.join(METHODS)}")
    return method


# -- strace --------------------------------------------------------------------------------

def traced_command(argv: list[str], trace_file: Path) -> list[str]:
    """``argv`` run under ``strace -f``, its trace going to ``trace_file``."""
    try:
        return [*strace_prefix(trace_file), *argv]
    except StraceUnavailable:
        raise KernelTraceUnavailable(
            "watching the learning run with strace needs strace, which is not installed: "
            "install it (apt-get install strace), use --kernel-trace user_notif, or pass "
            "--no-kernel to learn only the [gates] section") from None


def run_syscalls(trace_file: Path) -> collections.Counter[str]:
    """Syscall counts between the run's two markers, from every thread of the process."""
    try:
        text = trace_file.read_text(errors="replace")
    except OSError as exc:
        raise KernelTraceUnavailable(f"strace wrote no trace ({exc.strerror}); pass "
                                     "--no-kernel to learn without it") from None
    during, _ = steady_state(text)
    return during


# -- USER_NOTIF ----------------------------------------------------------------------------

def notify_everything() -> None:
    """In the learning run's process: from now on, every syscall of every thread notifies.

    Irreversible, so only ever called in the child made for the run (never in a
    process that goes on to do anything else). The marker tells the watcher the span began.
    """
    program = compile_section(Section(SECCOMP_RET_USER_NOTIF), native_arch())
    set_no_new_privs()
    install_filter(program, SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC
                   | SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
    raw_syscall(BEGIN_MARKER)


def watch_notifications(proc: subprocess.Popen[bytes]) -> collections.Counter[str]:
    """Count ``proc``'s syscalls between its markers, answering each with CONTINUE; wait for it.

    A child that ends before installing its filter (its module failed to load) is
    simply waited for: it reports its own error.
    """
    listener = _take_listener(proc)
    during: collections.Counter[str] = collections.Counter()
    if listener is None:
        proc.wait()
        return during
    arch = native_arch()
    phase: list[collections.Counter[str] | None] = [during]

    def decide(notification: Notification, memory: TargetMemory) -> Verdict:
        del memory  # the count needs only the syscall number
        nr = notification.data.nr
        if nr == END_MARKER:
            phase[0] = None
        elif nr != BEGIN_MARKER and phase[0] is not None:
            phase[0][arch.name_of(nr) or f"syscall_{nr:#x}"] += 1
        return Verdict.allow()

    with Supervisor(listener, decide):
        proc.wait()
    return during


def _take_listener(proc: subprocess.Popen[bytes]) -> int | None:
    """A copy of ``proc``'s seccomp listener once it has one; None if it ends first."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        while proc.poll() is None:
            fd = _listener_number(proc.pid)
            if fd is not None:
                copy, err = raw_syscall(native_arch().number("pidfd_getfd"), pidfd, fd, 0)
                if copy < 0:
                    proc.kill()
                    raise KernelTraceUnavailable(
                        f"cannot take the learning run's seccomp listener (pidfd_getfd: "
                        f"{os.strerror(err)}); install strace, or pass --no-kernel")
                return copy
            time.sleep(0.005)
        return None
    finally:
        os.close(pidfd)


def _listener_number(pid: int) -> int | None:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == NOTIFY_LINK:
                return int(name)
        except OSError:
            continue
    return None
