"""The broker: Python that decides gate calls the policy sends to it (TRAP, USER_NOTIF).

A broker is any callable ``broker(request) -> verdict``. The request carries the
gate, the decoded arguments and a view of guest memory; the verdict is one of

* :data:`ALLOW` — run the gate as if the policy had allowed it;
* :class:`Errno` ``(n)`` — deny; the gate returns ``n`` in its own error
  convention (WASI errno for WASI gates, ``-n`` for app gates with an int result);
* :class:`Value` ``(*results)`` — do not run the gate; return these results.

The same protocol serves the *tracer* hook for TRACE verdicts (which may also
return None, meaning ALLOW). A broker that raises aborts the call with that
exception, like any gate code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callgate.bpf.actions import MAX_ERRNO
from callgate.gates.host import GateHost
from callgate.gates.memory import GuestMemory
from callgate.gates.spec import GateSpec


@dataclass(frozen=True, slots=True)
class GateRequest:
    """A gate call waiting for the broker's (or tracer's) decision.

    ``action`` is ``"trap"``, ``"user_notif"`` or ``"trace"``; ``data`` is the 16-bit
    data of the verdict (TRAP's and TRACE's number); ``args`` are every argument as
    an unsigned int; ``ip`` is the import index the call came through.
    """

    gate: GateSpec
    args: tuple[int, ...]
    memory: GuestMemory | None
    action: str
    data: int
    ip: int
    plugin: GateHost


class Allow:
    """Run the gate."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ALLOW"


ALLOW = Allow()


@dataclass(frozen=True, slots=True)
class Errno:
    """Deny with errno ``n`` (WASI numbering for WASI and app gates), 1 to 4095.

    0 is refused (a "denial" answering 0 reads as success: answer ``Value(0)`` for
    that), and so is anything past the kernel's MAX_ERRNO, which would otherwise be
    cut to the gate's result width and could come out as 0 too.
    """

    n: int

    def __post_init__(self) -> None:
        check_errno(self.n)


def check_errno(n: object) -> int:
    """``n`` if it is an errno a broker may answer (an int 1..4095), else raise.

    ``TypeError`` for a non-int, ``ValueError`` for one out of range.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"Errno(n) takes an int errno, got {n!r} ({type(n).__name__})")
    if not 1 <= n <= MAX_ERRNO:
        raise ValueError(f"Errno({n}) is out of range: an errno is 1 to {MAX_ERRNO} (WASI "
                         "numbering for WASI gates); to answer success, return Value(...)")
    return n


@dataclass(frozen=True, slots=True)
class Value:
    """Skip the gate and return ``results`` to the guest (one int per wasm result)."""

    results: tuple[int, ...]

    def __init__(self, *results: int) -> None:
        object.__setattr__(self, "results", tuple(results))


Verdict = Allow | Errno | Value


class Broker(Protocol):
    """Decides TRAP and USER_NOTIF verdicts: the supervisor a seccomp filter traps to."""

    def __call__(self, request: GateRequest) -> Verdict: ...


class Tracer(Protocol):
    """Decides TRACE verdicts, as a ptrace tracer would: None means ALLOW."""

    def __call__(self, request: GateRequest) -> Verdict | None: ...
