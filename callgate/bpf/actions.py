"""Seccomp filter return values: actions, their 16-bit data, and the kernel's precedence.

A filter returns a u32. The top 16 bits choose the action, the low 16 bits are its
data (an errno, a trace message, a TRAP's ``si_errno``). When several filters or
rules disagree, the kernel keeps the one whose action, read as a *signed* 32-bit
number, is smallest; ``KILL_PROCESS`` (0x80000000) is therefore the strongest.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from callgate.errors import CallgateError

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_KILL = SECCOMP_RET_KILL_THREAD
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000

SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_ACTION = 0x7FFF0000
SECCOMP_RET_DATA = 0x0000FFFF

MAX_ERRNO = 4095

# Strongest first: the order in which the kernel lets one action override another.
PRECEDENCE: tuple[int, ...] = (
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_LOG,
    SECCOMP_RET_ALLOW,
)

# Names as seccomp-tools writes them in ``return`` statements.
ACTION_NAMES: dict[int, str] = {
    SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS",
    SECCOMP_RET_KILL_THREAD: "KILL",
    SECCOMP_RET_TRAP: "TRAP",
    SECCOMP_RET_ERRNO: "ERRNO",
    SECCOMP_RET_USER_NOTIF: "USER_NOTIF",
    SECCOMP_RET_TRACE: "TRACE",
    SECCOMP_RET_LOG: "LOG",
    SECCOMP_RET_ALLOW: "ALLOW",
}
_BY_NAME: dict[str, int] = {name: value for value, name in ACTION_NAMES.items()}
_BY_NAME["KILL_THREAD"] = SECCOMP_RET_KILL_THREAD
_WITH_DATA = {SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE, SECCOMP_RET_TRAP}


class ActionError(CallgateError, ValueError):
    """Text that does not name a seccomp action."""


def action_of(ret: int) -> int:
    """The action part (top 16 bits) of a filter return value."""
    return ret & SECCOMP_RET_ACTION_FULL


def data_of(ret: int) -> int:
    """The 16-bit data part of a filter return value."""
    return ret & SECCOMP_RET_DATA


def _signed(action: int) -> int:
    return action - (1 << 32) if action & 0x80000000 else action


def precedence_key(ret: int) -> int:
    """Sort key: smaller is more restrictive, exactly the kernel's ``ACTION_ONLY`` compare."""
    return _signed(action_of(ret))


def effective_action(ret: int) -> int:
    """The action the kernel actually takes: unknown action values act as KILL_PROCESS."""
    action = action_of(ret)
    return action if action in ACTION_NAMES else SECCOMP_RET_KILL_PROCESS


def format_action(ret: int) -> str:
    """seccomp-tools' spelling: ``ALLOW``, ``ERRNO(1)``, ``TRACE(7)``; unknown values in hex."""
    action = action_of(ret)
    name = ACTION_NAMES.get(action)
    if name is None:
        return f"{ret:#x}"
    data = data_of(ret)
    if action in _WITH_DATA and (data or action != SECCOMP_RET_TRAP):
        return f"{name}({data})"
    if data:
        return f"{ret:#x}"
    return name


_ACTION_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\(\s*([^)]*?)\s*\))?\s*$")


def parse_action(text: str, resolve: Callable[[str], int] | None = None) -> int:
    """Parse ``ALLOW``, ``errno(EPERM)``, ``ERRNO(1)``, ``trace(7)`` … into a return value.

    Names are case-insensitive. ``resolve`` turns a symbolic datum (an errno name)
    into a number; without it only numbers are accepted as data.
    """
    m = _ACTION_RE.match(text)
    if not m:
        raise ActionError(f"{text!r} is not an action; expected e.g. ALLOW, ERRNO(1), TRACE(7)")
    name, arg = m.group(1).upper(), m.group(2)
    if name not in _BY_NAME:
        known = ", ".join(sorted(_BY_NAME))
        raise ActionError(f"unknown action {m.group(1)!r}; known actions: {known}")
    action = _BY_NAME[name]
    if arg is None:
        return action
    if action not in _WITH_DATA:
        raise ActionError(f"action {name} takes no data, got {text!r}")
    try:
        data = int(arg, 0)
    except ValueError:
        if resolve is None:
            raise ActionError(f"{arg!r} in {text!r} is not a number") from None
        data = resolve(arg)
    if not 0 <= data <= SECCOMP_RET_DATA:
        raise ActionError(f"data {data} in {text!r} does not fit in 16 bits (0..65535)")
    return action | data
