"""The ``--json`` documents the reporting verbs print, one schema each.

Every document is one JSON object whose ``schema`` key names its schema and version,
``callgate.VERB/N``; the schemas themselves ship as JSON Schema files in
:mod:`callgate.schemas` (``callgate/schemas/VERB.schema.json``) and
``docs/json.md`` describes them. A version changes only when a field is removed or
changes meaning; new fields may appear within a version, so readers must ignore keys
they do not know.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from callgate.arch import Arch
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import SeccompData
from callgate.cli.inputs import FilterInput

SCHEMA_VERSION = 1
Doc = dict[str, Any]


def schema_id(kind: str) -> str:
    """The ``schema`` value of a ``kind`` document: ``callgate.KIND/1``."""
    return f"callgate.{kind}/{SCHEMA_VERSION}"


def document(kind: str, **fields: Any) -> Doc:
    return {"schema": schema_id(kind), **fields}


def write_json(doc: Doc, stream: Any = None) -> None:
    """One document, indented, then a newline."""
    out = stream or sys.stdout
    out.write(json.dumps(doc, indent=2) + "\n")
    out.flush()


def action(value: int) -> Doc:
    """A seccomp return value, as the number and as seccomp-tools spells it."""
    return {"value": value, "text": format_action(value)}


def emu_report(given: FilterInput, program: list[Insn], arch: Arch, data: SeccompData,
               title: str) -> Doc:
    """``callgate emu --json``: the call, the executed lines (each annotated), the verdict."""
    from callgate.teach.explain import explain_program

    run = explain_program(program, arch, data)
    return document(
        "emu",
        input={"name": given.name, "kind": given.kind, "title": title},
        arch=arch.name,
        call={"nr": run.nr, "name": run.name, "arch": run.call_arch, "ip": run.ip,
              "args": list(run.args)},
        path=[dataclasses.asdict(step) for step in run.path],
        action=action(run.bpf),
        line=run.path[-1].line,
        program_length=run.program_length,
    )
