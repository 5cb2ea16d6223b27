"""WASI preview1 as gates: every ``wasi_snapshot_preview1`` function, mediated per call.

Use :class:`WasiProvider` with a :class:`WasiConfig` as a gate provider of a
:class:`callgate.runtime.Plugin`. See ``docs/wasi.md``.
"""

from callgate.gates.wasi.provider import (
    PreopenSpec,
    WasiProvider,
    parse_preopen,
    preopen_arg,
    wasi_specs,
)
from callgate.gates.wasi.state import Preopen, WasiCall, WasiConfig, WasiConfigError, WasiState

__all__ = ["Preopen", "PreopenSpec", "WasiCall", "WasiConfig", "WasiConfigError", "WasiProvider",
           "WasiState", "parse_preopen", "preopen_arg", "wasi_specs"]
