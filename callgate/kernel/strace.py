"""Watching a process's syscalls with ``strace -f``, bracketed by marker syscalls.

Both the runtime baseline (``callgate kernel baseline``) and ``callgate learn``
need the same thing: the syscalls a Python process makes during one phase of its
life (after loading, before exiting), from every thread. The process marks the
phase itself with two syscall numbers no kernel assigns; strace prints them as
``syscall_0x3e8`` and ``syscall_0x3e9``, and :func:`steady_state` counts what lies
between them and after them.
"""

from __future__ import annotations

import collections
import re
import shutil
from pathlib import Path

from callgate.errors import CallgateError

# Unassigned syscall numbers strace shows as syscall_0x3e8 / syscall_0x3e9.
BEGIN_MARKER = 1000
END_MARKER = 1001

_LINE = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]")


class StraceUnavailable(CallgateError):
    """strace is not installed, so a process's syscalls cannot be watched."""


def strace_prefix(out: Path) -> list[str]:
    """The command words that run a command under ``strace -f``, its trace written to ``out``."""
    strace = shutil.which("strace")
    if strace is None:
        raise StraceUnavailable("strace is not installed; install it (apt-get install strace)")
    return [strace, "-f", "-qq", "-o", str(out)]


def steady_state(trace: str) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Syscall counts in the steady state and after it (exit), from ``strace -f`` output."""
    during: collections.Counter[str] = collections.Counter()
    after: collections.Counter[str] = collections.Counter()
    phase = None
    for line in trace.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        name = match.group(1)
        if name == f"syscall_{BEGIN_MARKER:#x}":
            phase = during
        elif name == f"syscall_{END_MARKER:#x}":
            phase = after
        elif phase is not None and name != "resumed":
            phase[name] += 1
    return during, after
