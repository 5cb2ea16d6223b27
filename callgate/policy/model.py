"""The policy model: plain, immutable data that loaders produce and the compiler consumes.

A :class:`Policy` has up to two :class:`Section`\\ s, ``gates`` (the in-process
filter on plugin imports) and ``kernel`` (the seccomp filter on the host process),
and optionally a :class:`LandlockSection` (the paths the locked host may reach).
A section is a default action plus rules. A rule matches when its name matches
and *all* of its arg checks hold (AND); a call is judged by every matching rule
(OR), and the most restrictive action wins, in kernel precedence order, so rule
order never matters.

Actions are stored as raw seccomp return values (``SECCOMP_RET_ERRNO | 1``): the
exact thing a filter returns, with no second representation to keep in sync.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Op(enum.StrEnum):
    """Argument comparison operators, compared as unsigned integers of ``width`` bits.

    ``masked_eq`` holds when ``arg & value == value2`` (libseccomp's and OCI's
    ``SCMP_CMP_MASKED_EQ(mask, datum)`` order).
    """

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    MASKED_EQ = "masked_eq"


class Layer(enum.StrEnum):
    GATES = "gates"
    KERNEL = "kernel"


@dataclass(frozen=True, slots=True)
class ArgCheck:
    """One comparison on ``args[index]``.

    ``width`` 64 compares the full argument; ``width`` 32 compares only its low
    word, so a 32-bit ``int`` argument such as an fd matches whatever the upper
    half holds (sidestepping libseccomp's sign-extension pitfall).
    """

    index: int
    op: Op
    value: int
    value2: int | None = None
    width: int = 64


@dataclass(frozen=True, slots=True)
class Rule:
    """``names`` get ``action`` when every check in ``args`` holds."""

    names: tuple[str, ...]
    action: int
    args: tuple[ArgCheck, ...] = ()
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Section:
    """One layer's filter description.

    ``mismatch_action`` is returned when ``seccomp_data.arch`` is not the arch the
    filter was compiled for (default ``KILL_PROCESS``).

    ``enosys_above``, when set, makes every syscall *number* greater than it return
    ``ERRNO(ENOSYS)`` whatever the rules say. It reproduces runc's ``-ENOSYS`` stub
    for OCI profiles: syscalls newer than anything the profile names look absent,
    so libc falls back instead of failing with the default's ``EPERM``.
    """

    default: int
    rules: tuple[Rule, ...] = ()
    mismatch_action: int | None = None
    enosys_above: int | None = None


@dataclass(frozen=True, slots=True)
class LandlockSection:
    """``[landlock]``: what the locked-down host may still reach by path, beyond its preopens.

    A seccomp filter cannot see paths, so the kernel layer confines them with Landlock
    (see docs/kernel.md): the preopened directories, plus ``read`` (read files, list
    directories beneath) and ``write`` (also create, change, remove) absolute paths, plus
    outgoing (``connect_tcp``) and listening (``bind_tcp``) TCP ports. ``required``:
    refuse to run on a kernel without Landlock instead of warning.
    """

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    connect_tcp: tuple[int, ...] = ()
    bind_tcp: tuple[int, ...] = ()
    required: bool = False


@dataclass(frozen=True, slots=True)
class GateTiming:
    """What time a plugin may see, and how steady its gate calls are (docs/covert.md).

    ``clock_resolution_ns`` (``[gates.clocks] resolution``): ``clock_time_get`` answers
    the time rounded down to a multiple of it, and ``clock_res_get`` reports at least it;
    0 leaves the host's clocks as they are. ``jitter_ns`` (``[gates] jitter``): every gate
    call waits a fresh random time in ``[0, jitter_ns)`` before it is decided; 0 adds
    none. Both narrow timing channels between plugins; neither closes them.
    """

    clock_resolution_ns: int = 0
    jitter_ns: int = 0

    @property
    def active(self) -> bool:
        return bool(self.clock_resolution_ns or self.jitter_ns)


NO_TIMING = GateTiming()


@dataclass(frozen=True, slots=True)
class Policy:
    """A whole policy file. ``source`` names where it came from, for error messages."""

    gates: Section | None = None
    kernel: Section | None = None
    source: str = "<policy>"
    flags: tuple[str, ...] = field(default=())
    landlock: LandlockSection | None = None
    timing: GateTiming = NO_TIMING

    def section(self, layer: Layer | str) -> Section | None:
        return self.gates if Layer(layer) is Layer.GATES else self.kernel

    def _repr_html_(self) -> str:
        """Jupyter shows a policy as tables (:mod:`callgate.policy.html`)."""
        from callgate.policy.html import policy_html

        return policy_html(self)
