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
    """Deny with errno ``n`` (WASI numbering for WASI and app gates)."""

    n: int


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
