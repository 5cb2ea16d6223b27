"""The module header reader: imports and exports without compiling, checked against wasmtime.

Loading refuses unmediated imports from the header, before compiling (which takes
minutes for a large module), so the reader must agree with wasmtime on every module
it reads, and must fail cleanly (ModuleHeaderError, never an over-read) on any other.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import wasmtime
from conftest import require
from hypothesis import given, settings, strategies as st
from rt_helpers import wat

import callgate.runtime.loading as loading
from callgate import ImportRefused, Plugin
from callgate.runtime.module_header import ModuleHeaderError, read_header

REPO = Path(__file__).resolve().parents[2]
SUITE = Path(os.environ.get("WASI_TESTSUITE") or REPO.parent / "shared" / "wasi-testsuite")
MODULES = sorted((REPO / "guests" / "wasm").glob("*.wasm")) + sorted(SUITE.rglob("*.wasm"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_the_header_agrees_with_wasmtime(path: Path) -> None:
    data = path.read_bytes()
    compiled = wasmtime.Module(wasmtime.Engine(), data)
    assert read_header(data) == loading.header_of_module(compiled)


def test_the_corpus_includes_the_wasi_testsuite() -> None:
    require(SUITE.is_dir(), f"the wasi-testsuite at {SUITE} (set WASI_TESTSUITE)")
    assert sum(SUITE in p.parents for p in MODULES) >= 20


def foreign_module(padding: int) -> bytes:
    """A module importing ``env.system`` whose code is ``padding`` bytes of custom section."""
    header = wat('(module (import "env" "system" (func (param i32) (result i32))))')
    name = b"\x07padding"
    body = name + bytes(padding)
    size = len(body)
    leb = bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        leb.append(byte | (0x80 if size else 0))
        if not size:
            break
    return header + b"\x00" + bytes(leb) + body


def test_an_unmediated_import_is_refused_before_compiling(monkeypatch) -> None:
    compiled: list[int] = []
    real = loading._compile_cached

    def spy(*args: object) -> wasmtime.Module:
        compiled.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(loading, "_compile_cached", spy)
    with pytest.raises(ImportRefused, match=r"env\.system: no such gate"):
        Plugin(foreign_module(64 * 1024 * 1024))
    assert compiled == []
    with Plugin(wat("(module (func (export \"f\")))")) as ok:  # ordinary loads still compile
        assert ok.call_int("f") is None
    assert compiled == [1]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_damaged_header_is_a_clean_error_or_a_correct_read(data: st.DataObject) -> None:
    original = (REPO / "guests" / "wasm" / "cat.wasm").read_bytes()[:4096]
    cut = data.draw(st.integers(8, len(original)))
    mutated = bytearray(original[:cut])
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(8, len(mutated) - 1)) if len(mutated) > 8 else 8
        if at < len(mutated):
            mutated[at] = data.draw(st.integers(0, 255))
    try:
        header = read_header(bytes(mutated))
    except ModuleHeaderError:
        return
    assert all(imp.kind in ("func", "table", "memory", "global", "tag") for imp in header.imports)


def test_wrong_magic_and_forms_it_does_not_read_are_header_errors() -> None:
    with pytest.raises(ModuleHeaderError, match="not a wasm binary"):
        read_header(b"(module)")
    with pytest.raises(ModuleHeaderError, match="LEB128"):
        read_header(b"\0asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\xff\x01")
