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
    compile_module,
    default_providers,
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
    """Compile ``module`` (a path, wasm or WAT bytes) and resolve its imports to gates."""
    data, name = module_bytes(module)
    engine = SharedEngine.for_limits(Limits()).engine
    compiled = compile_module(data, engine, name)
    table = GateTable(default_providers() if providers is None else providers)
    resolved = resolve_imports(compiled, table)
    gates = tuple({spec.name: spec for spec, _ in resolved}.values())
    return StaticImports(name, gates, table)
