"""Loading a module: read it (capped), resolve every import to a gate, compile it (cached).

Imports are resolved from the module's header (:mod:`~callgate.runtime.module_header`)
*before* compiling, so a module callgate cannot mediate is refused in milliseconds
whatever its size. Both plugin kinds and ``callgate learn`` load through these
functions, so a module refused by one is refused by all, with the same message.

What a second plugin of the same module would recompute is cached by the module's
bytes (the file is read again every time, so an edited module is never served from
a stale entry): the compiled module, its parsed header, and which gate each import
resolves to for a given gate table's layout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import wasmtime

from callgate.arch.gate_numbers import WASI_MODULE
from callgate.gates.errors import ImportRefused, PluginLoadError
from callgate.gates.spec import GateSpec
from callgate.gates.table import GateProvider, GateTable
from callgate.gates.wasi import WasiProvider
from callgate.runtime.compile_cache import CompileCache
from callgate.runtime.module_header import (
    MAGIC,
    ImportDecl,
    ModuleHeader,
    ModuleHeaderError,
    read_header,
)

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
            data = read_capped(f, MAX_MODULE_BYTES)
    except OSError as exc:
        raise PluginLoadError(f"cannot read plugin {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MODULE_BYTES:
        raise PluginLoadError(f"plugin {path} is larger than {MAX_MODULE_BYTES} bytes")
    return data, path.stem


def read_capped(f: BinaryIO, cap: int) -> bytes:
    """All of ``f``, or ``cap + 1`` bytes when it holds more (the caller refuses it).

    Sized by ``fstat`` first: ``read(cap + 1)`` alone would allocate the whole cap (256
    MiB) for every read. A file that is not regular, or grew, is read on up to the cap.
    """
    size = os.fstat(f.fileno()).st_size
    data = f.read(min(size, cap) + 1)
    if len(data) > size and len(data) <= cap:
        data += f.read(cap + 1 - len(data))
    return data


@lru_cache(maxsize=32)
def _compile_cached(engine: wasmtime.Engine, data: bytes, engine_tag: str,
                    disk: CompileCache | None) -> wasmtime.Module:
    if disk is not None:
        cached = disk.load(engine, engine_tag, data)
        if cached is not None:
            return cached
    module = wasmtime.Module(engine, data)
    if disk is not None:
        disk.store(engine_tag, data, module)
    return module


def as_binary(data: bytes, name: str) -> bytes:
    """The binary module of ``data``: itself, or WAT text converted (``name`` for errors)."""
    if data[:4] == MAGIC:
        return data
    try:
        return bytes(wasmtime.wat2wasm(data))
    except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
        raise PluginLoadError(_invalid_module(name, data, exc)) from None


@lru_cache(maxsize=32)
def header_of(data: bytes) -> ModuleHeader | None:
    """The imports and exports of binary ``data``; None when only wasmtime can tell.

    Cached by content (a header is immutable): a module loaded again is not re-read.
    """
    try:
        return read_header(data)
    except ModuleHeaderError:
        return None  # malformed, or a form this reader skips: compiling will say


def header_of_module(module: wasmtime.Module) -> ModuleHeader:
    """The same, from an already compiled module."""
    imports = []
    for imp in module.imports:
        ty = imp.type
        if isinstance(ty, wasmtime.FuncType):
            params, results = signature(ty)
            imports.append(ImportDecl(imp.module, imp.name or "", "func", params, results))
        else:
            kind = type(ty).__name__.removesuffix("Type").lower()
            imports.append(ImportDecl(imp.module, imp.name or "", kind))
    exports = tuple((exp.name, "memory" if isinstance(exp.type, wasmtime.MemoryType)
                     else type(exp.type).__name__.removesuffix("Type").lower())
                    for exp in module.exports)
    return ModuleHeader(tuple(imports), exports)


def compile_module(data: bytes, engine: wasmtime.Engine, name: str, *, engine_tag: str = "",
                   disk: CompileCache | None = None) -> wasmtime.Module:
    """``data`` (wasm or WAT) compiled for ``engine``, cached by content in this process
    and, given ``disk`` and the engine's configuration as ``engine_tag``, on disk;
    ``name`` for errors."""
    try:
        return _compile_cached(engine, data, engine_tag, disk if engine_tag else None)
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


def resolve_imports(header: ModuleHeader, table: GateTable
                    ) -> list[tuple[GateSpec, GateProvider]]:
    """The gate (and its provider) each import of a module resolves to, in import order.

    Every import must be a function of ``table`` with exactly the gate's signature;
    otherwise ``ImportRefused`` names every offending import at once. A WASI module
    must also export its memory as ``memory``.
    """
    problems: list[str] = []
    resolved: list[tuple[GateSpec, GateProvider]] = []
    for index, imp in enumerate(header.imports):
        where = f"import #{index} {imp.module}.{imp.name}"
        if imp.kind != "func":
            problems.append(f"{where}: a {imp.kind} import; only functions can be gates")
            continue
        found = table.find(imp.module, imp.name)
        if found is None:
            problems.append(f"{where}: no such gate")
            continue
        spec, provider = found
        declared = (imp.params, imp.results)
        if declared != (spec.params, spec.results):
            problems.append(f"{where}: declared {format_signature(*declared)}, but the "
                            f"gate is {format_signature(spec.params, spec.results)}")
            continue
        resolved.append((spec, provider))
    if problems:
        raise ImportRefused(problems)
    _check_memory_export(header, resolved)
    return resolved


def _check_memory_export(header: ModuleHeader,
                         resolved: list[tuple[GateSpec, GateProvider]]) -> None:
    """A module importing WASI gates that use guest memory must export it as ``memory``.

    WASI's pointers mean nothing without it (wasmtime's WASI fails such calls too);
    refusing at load says so once and clearly, instead of EFAULT on every call.
    """
    needing = sorted({spec.name for spec, _ in resolved
                      if spec.module == WASI_MODULE and spec.uses_memory})
    if not needing:
        return
    memories = header.exported("memory")
    if "memory" in memories:
        return
    exported = (f"it exports its memory as {', '.join(repr(m) for m in memories)}"
                if memories else "it exports no memory")
    raise PluginLoadError(
        f"module refused: it imports WASI gates that read or write guest memory "
        f"({', '.join(needing[:4])}{', …' if len(needing) > 4 else ''}), but {exported}; "
        "export the linear memory as 'memory', as WASI requires")
