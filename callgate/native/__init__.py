"""callgate's native core: C where a measurement demands it, each piece with a twin.

The core is one cffi API-mode extension, ``callgate.native._core``, built at install
time from ``csrc/`` (one C file per concern; ``_build.py`` is the build script). Every
piece has a pure-Python twin that decides identically, used when the core is not built
(no C compiler at install) or when ``CALLGATE_PURE_PYTHON=1``; ``python -m
callgate.native`` says which path is active. This package is a leaf: it imports nothing
else from callgate, and takes what it drives (a wasmtime engine, say) as addresses.

Concerns:

* :mod:`callgate.native.ticker`: a ticker thread that needs no GIL (deadlines);
* :mod:`callgate.native.gate` (``csrc/gate.c``, ``csrc/bpf.c``): the gate core - a gate's
  filter, its ERRNO and KILL verdicts and the hot WASI gates' bodies in C, as wasmtime's
  raw callback, with no GIL; its twin is the Python runtime itself (``runtime/dispatch.py``
  and ``gates/wasi/``), held equal by ``tests/native``.
"""

from callgate.native.loader import (
    FORCE_PURE_PYTHON as FORCE_PURE_PYTHON,
    NativeFallbackWarning as NativeFallbackWarning,
    NativeStatus as NativeStatus,
    native_available as native_available,
    native_status as native_status,
)

__all__ = [
    "FORCE_PURE_PYTHON",
    "NativeFallbackWarning",
    "NativeStatus",
    "native_available",
    "native_status",
]
