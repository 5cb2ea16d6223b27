"""Loading a module: read it (capped), compile it (cached), resolve every import to a gate.

Both plugin kinds and ``callgate learn`` load through these functions, so a module
refused by one is refused by all, with the same message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import wasmtime

from callgate.arch.gate_numbers import WASI_MODULE
from callgate.gates.errors import ImportRefused, PluginLoadError
from callgate.gates.spec import GateSpec
from callgate.gates.table import GateProvider, GateTable
from callgate.gates.wasi import WasiProvider

# A module file bigger than this is refused before reading it whole.
MAX_MODULE_BYTES = 256 * 1024 * 1024

ModuleSource = str | os.PathLike[str] | bytes | wasmtime.Module
Signature = tuple[tuple[str, ...], tuple[str, ...]]


def default_providers() -> list[GateProvider]:
    """The providers an ordinary guest needs: WASI preview1 with its default configuration."""
    return [WasiProvider()]


def module_bytes(module: ModuleSource) -> tuple[bytes, str]:
    """``(wasm or WAT bytes, a default plugin name)``; a file over the cap is refused."""
    if isinstance(module, wasmtime.Module):
        return b"", "module"
    if isinstance(module, (bytes, bytearray, memoryview)):
        data = bytes(module)
        if len(data) > MAX_MODULE_BYTES:
            raise PluginLoadError(f"plugin module is larger than {MAX_MODULE_BYTES} bytes")
        return data, "plugin"
    path = Path(module)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_MODULE_BYTES + 1)
    except OSError as exc:
        raise PluginLoadError(f"cannot read plugin {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MODULE_BYTES:
        raise PluginLoadError(f"plugin {path} is larger than {MAX_MODULE_BYTES} bytes")
    return data, path.stem


@lru_cache(maxsize=32)
def _compile_cached(engine: wasmtime.Engine, digest: bytes, data: bytes) -> wasmtime.Module:
    del digest  # part of the cache key only
    return wasmtime.Module(engine, data)


def compile_module(data: bytes, engine: wasmtime.Engine, name: str) -> wasmtime.Module:
    """``data`` (wasm or WAT) compiled for ``engine``, cached by content; ``name`` for errors."""
    try:
        return _compile_cached(engine, hashlib.sha256(data).digest(), data)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(_invalid_module(name, data, exc)) from None


def _invalid_module(name: str, data: bytes, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
    if data[:4] != b"\0asm" and data.lstrip()[:1] != b"(":
        return (f"{name}: not a wasm module: it has no \\0asm header and is not WAT text "
                f"(starts with {data[:8]!r})")
    return f"{name}: not a valid wasm module: {first}"


def signature(ft: wasmtime.FuncType) -> Signature:
    """``(params, results)`` of a function type, as value-type names."""
    return tuple(str(t) for t in ft.params), tuple(str(t) for t in ft.results)


def format_signature(params: Sequence[str], results: Sequence[str]) -> str:
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def resolve_imports(module: wasmtime.Module, table: GateTable
                    ) -> list[tuple[GateSpec, GateProvider]]:
    """The gate (and its provider) each import of ``module`` resolves to, in import order.

    Every import must be a function of ``table`` with exactly the gate's signature;
    otherwise ``ImportRefused`` names every offending import at once.
    """
    problems: list[str] = []
    resolved: list[tuple[GateSpec, GateProvider]] = []
    for index, imp in enumerate(module.imports):
        where = f"import #{index} {imp.module}.{imp.name}"
        ty = imp.type
        if not isinstance(ty, wasmtime.FuncType):
            problems.append(f"{where}: a {type(ty).__name__.removesuffix('Type').lower()} "
                            "import; only functions can be gates")
            continue
        found = table.find(imp.module, imp.name or "")
        if found is None:
            problems.append(f"{where}: no such gate")
            continue
        spec, provider = found
        declared = signature(ty)
        if declared != (spec.params, spec.results):
            problems.append(f"{where}: declared {format_signature(*declared)}, but the "
                            f"gate is {format_signature(spec.params, spec.results)}")
            continue
        resolved.append((spec, provider))
    if problems:
        raise ImportRefused(problems)
    _check_memory_export(module, resolved)
    return resolved


def _check_memory_export(module: wasmtime.Module,
                         resolved: list[tuple[GateSpec, GateProvider]]) -> None:
    """A module importing WASI gates that use guest memory must export it as ``memory``.

    WASI's pointers mean nothing without it (wasmtime's WASI fails such calls too);
    refusing at load says so once and clearly, instead of EFAULT on every call.
    """
    needing = sorted({spec.name for spec, _ in resolved
                      if spec.module == WASI_MODULE and spec.uses_memory})
    if not needing:
        return
    memories = [exp.name for exp in module.exports if isinstance(exp.type, wasmtime.MemoryType)]
    if "memory" in memories:
        return
    exported = (f"it exports its memory as {', '.join(repr(m) for m in memories)}"
                if memories else "it exports no memory")
    raise PluginLoadError(
        f"module refused: it imports WASI gates that read or write guest memory "
        f"({', '.join(needing[:4])}{', …' if len(needing) > 4 else ''}), but {exported}; "
        "export the linear memory as 'memory', as WASI requires")
