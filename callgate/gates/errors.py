"""Errors a plugin can end a call with, one class per cause, so callers can tell them apart.

They live with the gates, not the runtime, because they are the gate<->host contract's
vocabulary: gates raise some (:class:`GateDenied`, :class:`GuestMemoryError`), the
host that runs the gates raises the rest, and both plugin kinds raise the same classes.

Everything derives from :class:`PluginError` (itself a
:class:`~callgate.errors.CallgateError`). Limit violations share
:class:`LimitExceeded`; policy verdicts that end a call share :class:`GateViolation`.
After any of these the host and every other plugin are unaffected; only
:class:`PluginKilled` (and :class:`PluginClosed`) leave the plugin unusable.
"""

from __future__ import annotations

from callgate.errors import CallgateError
from callgate.gates.memory import GuestMemoryError
from callgate.policy.errors import PolicyError


class PluginError(CallgateError):
    """Base of every error a plugin's load or call can raise on purpose.

    ``details`` holds wasmtime's full text (with the wasm backtrace) when there is one.
    """

    details: str = ""


class PluginLoadError(PluginError):
    """The module cannot be compiled or instantiated (not wasm, a start function failed …)."""


class PolicyRefused(PolicyError, PluginLoadError):
    """The policy given to a plugin cannot be used: unreadable, invalid, no ``[gates]``,
    or a program the kernel's verifier would refuse. ``problems`` lists each reason.

    It is a :class:`~callgate.policy.PolicyError` (as ``load_policy`` raises) and a
    :class:`PluginLoadError` (as every other reason a plugin cannot load).
    """


class ImportRefused(PluginLoadError):
    """The module imports something that is not a known gate, or with the wrong signature.

    ``problems`` lists one line per offending import; nothing of the module ran.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n  ".join(problems)
        super().__init__(
            f"module refused: {len(problems)} import(s) are not gates callgate can mediate:\n"
            f"  {listing}\n"
            "Every import must be a WASI preview1 function or an app-defined gate registered "
            "with the plugin (see `callgate gates`)."
        )


class LimitExceeded(PluginError):
    """A configured resource limit stopped the plugin."""


class FuelExhausted(LimitExceeded):
    """The call used up its fuel budget (``Limits.fuel``)."""


class DeadlineExceeded(LimitExceeded):
    """The call ran past its wall-clock deadline (``Limits.timeout``)."""


class MemoryLimitExceeded(LimitExceeded):
    """The module needs more linear memory than ``Limits.memory`` allows."""


class TableLimitExceeded(LimitExceeded):
    """The module needs more table elements (or tables) than the limits allow."""


class InstanceLimitExceeded(LimitExceeded):
    """The module needs more instances or memories than the limits allow."""


class StackOverflow(LimitExceeded):
    """The guest overflowed its wasm stack (``Limits.stack``); the host stack is untouched."""


class OutputLimitExceeded(LimitExceeded):
    """A call returned or wrote more bytes than ``Limits.output`` allows."""


class GuestTrap(PluginError):
    """The guest trapped (unreachable, division by zero, out-of-bounds access, …).

    ``trap`` names the wasm trap (``unreachable_code_reached``, …) or is None for a
    trap without a code.
    """

    def __init__(self, message: str, trap: str | None = None) -> None:
        super().__init__(message)
        self.trap = trap


class GateViolation(PluginError):
    """The policy answered a gate call with KILL_THREAD: that call is aborted.

    ``gate`` and ``number`` name the gate, ``action`` is the verdict's name.
    """

    def __init__(self, gate: str, number: int, action: str, plugin: str = "") -> None:
        self.gate = gate
        self.number = number
        self.action = action
        self.plugin = plugin
        super().__init__(f"policy {action} on gate {gate} (#{number})"
                         + (f" in plugin {plugin}" if plugin else ""))


class PluginKilled(GateViolation):
    """The policy answered KILL_PROCESS: the call is aborted and the plugin is poisoned."""


class PluginPoisoned(PluginError):
    """The plugin was killed by its policy earlier; it refuses every further call.

    ``cause`` is the :class:`PluginKilled` that poisoned it.
    """

    def __init__(self, cause: PluginKilled) -> None:
        self.cause = cause
        super().__init__(f"plugin was killed earlier ({cause}); load it again to use it")


class PluginCancelled(PluginError):
    """The call was ended by :meth:`Plugin.cancel` (or its ``asyncio`` task was cancelled).

    Only that call ends: the plugin stays usable, and the next call runs normally.
    """


class GateDenied(PluginError):
    """An ERRNO verdict (or denied TRAP) on a gate with no result to carry an errno."""

    def __init__(self, gate: str, number: int, errno: int) -> None:
        self.gate = gate
        self.number = number
        self.errno = errno
        super().__init__(f"gate {gate} (#{number}) denied with errno {errno}; it has no "
                         "result to return the errno in, so the call is aborted")


class PluginClosed(PluginError):
    """The plugin was closed; its store and instance are gone."""


class AbiError(PluginError):
    """The module does not follow the bytes ABI for this call (missing or mistyped export)."""


class GuestAllocError(AbiError):
    """The guest's ``cg_alloc`` returned 0: it cannot allocate room for the input."""


__all__ = [
    "AbiError",
    "DeadlineExceeded",
    "FuelExhausted",
    "GateDenied",
    "GateViolation",
    "GuestAllocError",
    "GuestMemoryError",
    "GuestTrap",
    "ImportRefused",
    "InstanceLimitExceeded",
    "LimitExceeded",
    "MemoryLimitExceeded",
    "OutputLimitExceeded",
    "PluginClosed",
    "PluginError",
    "PluginKilled",
    "PluginLoadError",
    "PluginPoisoned",
    "PolicyRefused",
    "StackOverflow",
    "TableLimitExceeded",
]
