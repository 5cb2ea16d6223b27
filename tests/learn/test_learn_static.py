"""Static analysis: a module's import table resolved to gates, as loading a plugin resolves it."""

from __future__ import annotations

import pytest
import wasmtime
from learn_helpers import WASM

from callgate.arch.gate_numbers import WASI_MODULE
from callgate.gates.errors import ImportRefused, PluginLoadError
from callgate.learn.imports import imported_gates
from callgate.runtime import Plugin


def wasmtime_imports(name: str) -> list[tuple[str, str]]:
    """The import table as wasmtime itself lists it, deduplicated in order."""
    module = wasmtime.Module(wasmtime.Engine(), (WASM / f"{name}.wasm").read_bytes())
    return list(dict.fromkeys((imp.module, imp.name) for imp in module.imports))


@pytest.mark.parametrize("guest", ["learnme", "lines", "copyfile", "cat", "timerand",
                                   "listdir", "fsops", "hello"])
def test_the_static_bound_is_the_import_table(guest):
    expected = wasmtime_imports(guest)
    static = imported_gates(WASM / f"{guest}.wasm")
    assert [(spec.module, spec.name) for spec in static.gates] == expected
    assert all(module == WASI_MODULE for module, _ in expected)
    if guest == "learnme":  # spot check the resolved specs carry the gate table's numbers
        numbers = {spec.name: spec.number for spec in static.gates}
        assert numbers["fd_write"] == 26 and numbers["random_get"] == 41


@pytest.mark.parametrize("guest", ["hostile_foreign_import", "hostile_bad_signature",
                                   "kvstore"])
def test_imports_that_are_not_gates_are_refused_as_loading_refuses_them(guest):
    path = WASM / f"{guest}.wasm"
    with pytest.raises(ImportRefused) as learned:
        imported_gates(path)
    with pytest.raises(ImportRefused) as loaded:
        Plugin(path)
    assert learned.value.problems == loaded.value.problems
    assert learned.value.problems  # names each offending import


def test_a_file_that_is_not_wasm_is_a_load_error(tmp_path):
    bogus = tmp_path / "x.wasm"
    bogus.write_bytes(b"#!/bin/sh\n")
    with pytest.raises(PluginLoadError, match="not a wasm module"):
        imported_gates(bogus)
