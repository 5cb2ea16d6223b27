"""The plugin runtime: load a wasm module, mediate every import through its gate, run it.

The public surface is :class:`~callgate.runtime.plugin.Plugin` plus the pieces it
takes (limits, broker verdicts, audit sink) and the errors it raises.
"""

from callgate.gates.errors import *  # noqa: F403 - the error classes are the API
from callgate.gates.errors import __all__ as _errors
from callgate.gates.spec import GuestExit
from callgate.runtime.audit import AuditRecord, AuditSink
from callgate.runtime.broker import ALLOW, Errno, GateRequest, Value
from callgate.runtime.limits import Limits
from callgate.runtime.plugin import Plugin

__all__ = [
    "ALLOW",
    "AuditRecord",
    "AuditSink",
    "Errno",
    "GateRequest",
    "GuestExit",
    "Limits",
    "Plugin",
    "Value",
    *_errors,
]
