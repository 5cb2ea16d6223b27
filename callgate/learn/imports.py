"""Static analysis: the gates a module could ever call, read from its import table.

A wasm module reaches nothing outside its memory except through its imports, so the
import table is a hard upper bound on what any run can do. The imports are resolved
by :func:`callgate.runtime.loading.resolve_imports`, the very function loading a plugin
uses: an import that is not a gate, or is declared with the wrong signature, is refused
here with the same ``ImportRefused`` message ``callgate run`` would give.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from callgate.gates.spec import GateSpec
from callgate.gates.table import GateProvider, GateTable
from callgate.runtime.limits import Limits, SharedEngine
from callgate.runtime.loading import (
    as_binary,
    compile_module,
    default_providers,
    header_of,
    header_of_module,
    module_bytes,
    resolve_imports,
)


@dataclass(frozen=True, slots=True)
class StaticImports:
    """What the import table allows at most.

    ``gates`` are the distinct gates imported, in import-table order; ``table`` is the
    whole gate table they were resolved against (every gate the host offers).
    """

    name: str
    gates: tuple[GateSpec, ...]
    table: GateTable

    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.gates)


def imported_gates(module: str | os.PathLike[str] | bytes,
                   providers: Iterable[GateProvider] | None = None) -> StaticImports:
    """Resolve the imports of ``module`` (a path, wasm or WAT bytes) to gates, from its header."""
    data, name = module_bytes(module)
    data = as_binary(data, name)
    header = header_of(data)
    if header is None:  # a module the header reader leaves to wasmtime
        header = header_of_module(compile_module(data, SharedEngine.for_limits(Limits()).engine,
                                                 name))
    table = GateTable(default_providers() if providers is None else providers)
    resolved = resolve_imports(header, table)
    gates = tuple({spec.name: spec for spec, _ in resolved}.values())
    return StaticImports(name, gates, table)
