"""callgate: run untrusted WebAssembly plugins with every host call mediated like a syscall.

Each import of a plugin is a *gate*. A call through a gate is packed into a
kernel-layout ``seccomp_data`` record and judged by a classic-BPF seccomp filter
before the host does anything on the guest's behalf.
"""

__version__ = "0.1.0"


# The embedding API, importable from the top level. Imported lazily: the BPF,
# policy and kernel tools must not pay for loading wasmtime.
_RUNTIME_EXPORTS = frozenset({
    "ALLOW", "AbiError", "AuditRecord", "AuditSink", "DeadlineExceeded", "Errno",
    "FuelExhausted", "GateDenied", "GateRequest", "GateViolation", "GuestExit", "GuestAllocError",
    "GuestMemoryError", "GuestTrap", "ImportRefused", "InstanceLimitExceeded", "LimitExceeded",
    "Limits", "MemoryLimitExceeded", "OutputLimitExceeded", "Plugin", "PluginClosed",
    "PluginError", "PluginKilled", "PluginLoadError", "PluginPoisoned", "StackOverflow",
    "TableLimitExceeded", "Value",
})


def __getattr__(name: str) -> object:
    if name in _RUNTIME_EXPORTS:
        from callgate import runtime
        return getattr(runtime, name)
    if name == "AppGates":
        from callgate.gates.app import AppGates
        return AppGates
    if name == "IsolatedPlugin":  # Plugin's API, in a locked-down worker process
        from callgate.isolation.isolated import IsolatedPlugin
        return IsolatedPlugin
    raise AttributeError(f"module 'callgate' has no attribute {name!r}")
