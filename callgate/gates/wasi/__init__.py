"""WASI preview1 as gates: every ``wasi_snapshot_preview1`` function, mediated per call.

Use :class:`WasiProvider` with a :class:`WasiConfig` as a gate provider of a
:class:`callgate.runtime.Plugin`. See ``docs/wasi.md``.
"""

from callgate.gates.wasi.provider import (
    Preopen,
    WasiConfig,
    WasiConfigError,
    WasiProvider,
    WasiState,
    preopen_arg,
    wasi_specs,
)

__all__ = ["Preopen", "WasiConfig", "WasiConfigError", "WasiProvider", "WasiState",
           "preopen_arg", "wasi_specs"]
