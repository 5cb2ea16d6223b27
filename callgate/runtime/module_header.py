"""What a wasm module imports and exports, read from its binary without compiling it.

Compiling a large module takes seconds to minutes (69 MB of Yosys: over a minute);
its import and export sections are in the header and take microseconds to read. So
loading refuses a module that imports something callgate cannot mediate *before*
compiling it, with the same message loading after compiling would give.

The reader follows the core spec's binary format (sections 1 type, 2 import,
7 export) and nothing else. Every length is checked against the bytes that remain,
so a malformed module gets a :class:`ModuleHeaderError`, never an over-read or a
loop; a module this reader cannot make sense of is left to wasmtime's validator.
"""

from __future__ import annotations

from dataclasses import dataclass

from callgate.errors import CallgateError

MAGIC = b"\0asm"
VERSION = b"\x01\x00\x00\x00"
SECTION_TYPE, SECTION_IMPORT, SECTION_EXPORT = 1, 2, 7
KIND_NAMES = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
            0x70: "funcref", 0x6F: "externref"}


class ModuleHeaderError(CallgateError, ValueError):
    """The module's type, import or export section is malformed."""


@dataclass(frozen=True, slots=True)
class ImportDecl:
    """One import: ``kind`` is ``func``, ``table``, ``memory``, ``global`` or ``tag``;
    a function's ``params``/``results`` are value-type names (``i32`` …)."""

    module: str
    name: str
    kind: str
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModuleHeader:
    imports: tuple[ImportDecl, ...]
    exports: tuple[tuple[str, str], ...]  # (name, kind)

    def exported(self, kind: str) -> list[str]:
        return [name for name, k in self.exports if k == kind]


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ModuleHeaderError("unexpected end of section")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift >= 35:
                raise ModuleHeaderError("LEB128 integer longer than 5 bytes")
        if result > 0xFFFFFFFF:
            raise ModuleHeaderError("LEB128 integer does not fit in u32")
        return result

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise ModuleHeaderError(f"length {n} runs past the end of the section")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def name(self) -> str:
        try:
            return self.take(self.u32()).decode("utf-8")
        except UnicodeDecodeError:
            raise ModuleHeaderError("a name is not valid UTF-8") from None

    def skip_limits(self) -> None:
        flags = self.byte()
        self.u32()
        if flags & 1:
            self.u32()

    def valtype(self) -> str:
        code = self.byte()
        return VALTYPES.get(code, f"0x{code:02x}")


def read_header(data: bytes) -> ModuleHeader:
    """The imports and exports of a binary module (``data`` must start with ``\\0asm``)."""
    if data[:4] != MAGIC or data[4:8] != VERSION:
        raise ModuleHeaderError("not a wasm binary module (no \\0asm version 1 header)")
    types: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    imports: list[ImportDecl] = []
    exports: list[tuple[str, str]] = []
    outer = _Reader(data, 8, len(data))
    while outer.pos < outer.end:
        section = outer.byte()
        size = outer.u32()
        start = outer.pos
        outer.take(size)
        if section not in (SECTION_TYPE, SECTION_IMPORT, SECTION_EXPORT):
            continue
        body = _Reader(data, start, start + size)
        if section == SECTION_TYPE:
            types = _read_types(body)
        elif section == SECTION_IMPORT:
            imports = _read_imports(body, types)
        else:
            exports = _read_exports(body)
            break  # nothing later matters here
    return ModuleHeader(tuple(imports), tuple(exports))


def _read_types(r: _Reader) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    out = []
    for _ in range(r.u32()):
        form = r.byte()
        if form != 0x60:  # rec/sub types (GC proposal): leave the module to wasmtime
            raise ModuleHeaderError(f"type form 0x{form:02x} is not a plain function type")
        params = tuple(r.valtype() for _ in range(r.u32()))
        results = tuple(r.valtype() for _ in range(r.u32()))
        out.append((params, results))
    return out


def _read_imports(r: _Reader, types: list[tuple[tuple[str, ...], tuple[str, ...]]]
                  ) -> list[ImportDecl]:
    out = []
    for _ in range(r.u32()):
        module, name, kind = r.name(), r.name(), r.byte()
        if kind == 0:
            index = r.u32()
            if index >= len(types):
                raise ModuleHeaderError(f"import {module}.{name} names type {index}, which "
                                        "does not exist")
            params, results = types[index]
            out.append(ImportDecl(module, name, "func", params, results))
            continue
        if kind == 1:
            r.byte()
            r.skip_limits()
        elif kind == 2:
            r.skip_limits()
        elif kind == 3:
            r.byte()
            r.byte()
        elif kind == 4:
            r.byte()
            r.u32()
        else:
            raise ModuleHeaderError(f"import {module}.{name} has unknown kind {kind}")
        out.append(ImportDecl(module, name, KIND_NAMES[kind]))
    return out


def _read_exports(r: _Reader) -> list[tuple[str, str]]:
    out = []
    for _ in range(r.u32()):
        name, kind = r.name(), r.byte()
        r.u32()
        out.append((name, KIND_NAMES.get(kind, f"kind {kind}")))
    return out
