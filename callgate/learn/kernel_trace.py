"""Which host syscalls the learning run made: ``strace -f`` of the process that ran it.

The learning run's process marks the span worth learning from with the marker syscalls
of :mod:`callgate.kernel.strace` (the same ones the runtime baseline is measured with):
from the moment the plugin is compiled and instantiated - where ``callgate run
--kernel`` would lock down - to the moment ``_start`` returns. Everything before is
start-up the kernel filter never sees; the exit afterwards is covered by the runtime
baseline.

Only strace is implemented. Without it, learning the ``[kernel]`` section fails with a
message saying to install strace or pass ``--no-kernel``.
"""

from __future__ import annotations

import collections
from pathlib import Path

from callgate.kernel.strace import StraceUnavailable, steady_state, strace_prefix


class KernelTraceUnavailable(StraceUnavailable):
    """The host syscalls of the learning run cannot be watched here."""


def traced_command(argv: list[str], trace_file: Path) -> list[str]:
    """``argv`` run under ``strace -f``, its trace going to ``trace_file``."""
    try:
        return [*strace_prefix(trace_file), *argv]
    except StraceUnavailable:
        raise KernelTraceUnavailable(
            "learning the [kernel] section needs strace, which is not installed: install it "
            "(apt-get install strace), or pass --no-kernel to learn only the [gates] "
            "section") from None


def run_syscalls(trace_file: Path) -> collections.Counter[str]:
    """Syscall counts between the run's two markers, from every thread of the process."""
    try:
        text = trace_file.read_text(errors="replace")
    except OSError as exc:
        raise KernelTraceUnavailable(f"strace wrote no trace ({exc.strerror}); pass "
                                     "--no-kernel to learn without it") from None
    during, _ = steady_state(text)
    return during
