"""The gate<->host contract: what a gate may ask of the plugin that is making the call.

A gate implementation sees its host only through :class:`GateHost`. Both plugin
kinds implement it: :class:`~callgate.runtime.Plugin` in-process, and
:class:`~callgate.isolation.IsolatedPlugin` for app gates that run in the parent
while the guest runs in a worker. A gate written against this protocol therefore
behaves the same under both.

The rules a gate follows (see :mod:`callgate.gates.table` for provider authors):

* before writing ``n`` guest-supplied bytes anywhere, call ``charge_output(n)``;
  it raises :class:`~callgate.gates.errors.OutputLimitExceeded` once the call's
  output budget is spent;
* before blocking, wait at most ``remaining_time()`` seconds (None: no deadline),
  then call ``check_deadline()``, which raises
  :class:`~callgate.gates.errors.DeadlineExceeded` once the deadline has passed
  (epoch interruption cannot reach Python code);
* guest memory comes with the call (``GateCall.memory``), never from the host.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class GateHost(Protocol):
    """The plugin a gate call comes from, as far as a gate may see it."""

    @property
    def name(self) -> str | None:
        """The plugin's name in audit records and error messages."""
        ...

    def charge_output(self, nbytes: int) -> None:
        """Count ``nbytes`` against the call's output budget; raise once it is passed."""
        ...

    def remaining_time(self) -> float | None:
        """Seconds left before the call's deadline, or None when it has none."""
        ...

    def check_deadline(self) -> None:
        """Raise ``DeadlineExceeded`` when the call is past its deadline."""
        ...
