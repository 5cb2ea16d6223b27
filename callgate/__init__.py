"""callgate: run untrusted WebAssembly plugins with every host call mediated like a syscall.

Each import of a plugin is a *gate*. A call through a gate is packed into a
kernel-layout ``seccomp_data`` record and judged by a classic-BPF seccomp filter
before the host does anything on the guest's behalf.

The embedding API is importable from here. Its names load lazily, so the BPF,
policy and kernel tools do not pay for loading wasmtime; type checkers see the
imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "CallgateError": "callgate.errors",
    "AppGates": "callgate.gates.app",
    "GateCall": "callgate.gates.spec",
    "GateSpec": "callgate.gates.spec",
    "GuestExit": "callgate.gates.spec",
    "GateHost": "callgate.gates.host",
    "GuestMemory": "callgate.gates.memory",
    "GuestMemoryError": "callgate.gates.memory",
    "WasiConfig": "callgate.gates.wasi",
    "WasiProvider": "callgate.gates.wasi",
    "Preopen": "callgate.gates.wasi",
    "Policy": "callgate.policy",
    "PolicyError": "callgate.policy",
    "load_policy": "callgate.policy",
    "ALLOW": "callgate.runtime.broker",
    "Broker": "callgate.runtime.broker",
    "Errno": "callgate.runtime.broker",
    "GateRequest": "callgate.runtime.broker",
    "Tracer": "callgate.runtime.broker",
    "Value": "callgate.runtime.broker",
    "AuditRecord": "callgate.runtime.audit",
    "AuditSink": "callgate.runtime.audit",
    "Limits": "callgate.runtime.limits",
    "Plugin": "callgate.runtime.plugin",
    "IsolatedPlugin": "callgate.isolation.isolated",
    "IsolationError": "callgate.isolation.isolated",
    "WorkerCrashed": "callgate.isolation.worker",
    "WorkerError": "callgate.isolation.worker",
    "WorkerTimeout": "callgate.isolation.worker",
    **{name: "callgate.gates.errors" for name in (
        "AbiError", "DeadlineExceeded", "FuelExhausted", "GateDenied", "GateViolation",
        "GuestAllocError", "GuestTrap", "ImportRefused", "InstanceLimitExceeded",
        "LimitExceeded", "MemoryLimitExceeded", "OutputLimitExceeded", "PluginClosed",
        "PluginCancelled", "PluginError", "PluginKilled", "PluginLoadError", "PluginPoisoned",
        "PolicyRefused",
        "StackOverflow", "TableLimitExceeded",
    )},
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers (`X as X`: re-exported)
    from callgate.errors import CallgateError as CallgateError
    from callgate.gates.app import AppGates as AppGates
    from callgate.gates.errors import (
        AbiError as AbiError,
        DeadlineExceeded as DeadlineExceeded,
        FuelExhausted as FuelExhausted,
        GateDenied as GateDenied,
        GateViolation as GateViolation,
        GuestAllocError as GuestAllocError,
        GuestTrap as GuestTrap,
        ImportRefused as ImportRefused,
        InstanceLimitExceeded as InstanceLimitExceeded,
        LimitExceeded as LimitExceeded,
        MemoryLimitExceeded as MemoryLimitExceeded,
        OutputLimitExceeded as OutputLimitExceeded,
        PluginCancelled as PluginCancelled,
        PluginClosed as PluginClosed,
        PluginError as PluginError,
        PluginKilled as PluginKilled,
        PluginLoadError as PluginLoadError,
        PluginPoisoned as PluginPoisoned,
        PolicyRefused as PolicyRefused,
        StackOverflow as StackOverflow,
        TableLimitExceeded as TableLimitExceeded,
    )
    from callgate.gates.host import GateHost as GateHost
    from callgate.gates.memory import (
        GuestMemory as GuestMemory,
        GuestMemoryError as GuestMemoryError,
    )
    from callgate.gates.spec import (
        GateCall as GateCall,
        GateSpec as GateSpec,
        GuestExit as GuestExit,
    )
    from callgate.gates.wasi import (
        Preopen as Preopen,
        WasiConfig as WasiConfig,
        WasiProvider as WasiProvider,
    )
    from callgate.isolation.isolated import (
        IsolatedPlugin as IsolatedPlugin,
        IsolationError as IsolationError,
    )
    from callgate.isolation.worker import (
        WorkerCrashed as WorkerCrashed,
        WorkerError as WorkerError,
        WorkerTimeout as WorkerTimeout,
    )
    from callgate.policy import (
        Policy as Policy,
        PolicyError as PolicyError,
        load_policy as load_policy,
    )
    from callgate.runtime.audit import AuditRecord as AuditRecord, AuditSink as AuditSink
    from callgate.runtime.broker import (
        ALLOW as ALLOW,
        Broker as Broker,
        Errno as Errno,
        GateRequest as GateRequest,
        Tracer as Tracer,
        Value as Value,
    )
    from callgate.runtime.limits import Limits as Limits
    from callgate.runtime.plugin import Plugin as Plugin


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'callgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
