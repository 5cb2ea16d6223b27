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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from callgate.arch import Arch
from callgate.arch.gate_numbers import APP_GATE_FIRST, APP_GATE_LAST
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import SeccompData
from callgate.cli.inputs import FilterInput
from callgate.gates.spec import GateSpec
from callgate.policy.lint import Finding

if TYPE_CHECKING:  # heavy imports, needed only by the verbs that use them
    from callgate.kernel.hostpolicy import HostPolicy
    from callgate.learn import Learned

SCHEMA_VERSION = 1
Doc = dict[str, Any]


def schema_id(kind: str) -> str:
    """The ``schema`` value of a ``kind`` document: ``callgate.KIND/1``."""
    return f"callgate.{kind}/{SCHEMA_VERSION}"


def document(kind: str, **fields: Any) -> Doc:
    return {"schema": schema_id(kind), **fields}


def document_text(doc: Doc) -> str:
    """One document, indented, then a newline."""
    return json.dumps(doc, indent=2) + "\n"


def write_json(doc: Doc, stream: Any = None) -> None:
    """One document on stdout (or ``stream``)."""
    out = stream or sys.stdout
    out.write(document_text(doc))
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


def check_report(name: str, findings: list[Finding]) -> Doc:
    """``callgate check --json``: every finding (info included) and the counts."""
    counts = {level: sum(f.level == level for f in findings)
              for level in ("error", "warning", "info")}
    return document(
        "check",
        policy=name,
        ok=counts["error"] == 0,
        counts=counts,
        findings=[{"level": f.level, "source": f.source, "key_path": f.key_path,
                   "message": f.message} for f in findings],
    )


def gates_report(specs: Iterable[GateSpec]) -> Doc:
    """``callgate gates --json``: the gate table in number order."""
    return document(
        "gates",
        gates=[{"number": spec.number, "module": spec.module, "name": spec.name,
                "params": list(spec.params), "results": list(spec.results)}
               for spec in specs],
        app_gate_numbers={"first": APP_GATE_FIRST, "last": APP_GATE_LAST},
    )


def kernel_policy_report(host: HostPolicy, always_denied: list[str]) -> Doc:
    """``callgate kernel policy --json``: what the derived host filter allows, and why."""
    return document(
        "kernel-policy",
        arch=host.arch.name,
        audit_arch=host.arch.audit_arch,
        default=action(host.section.default),
        default_allows=host.default_allows,
        allowed=[{"name": name, "number": host.arch.numbers.get(name),
                  "reasons": list(host.reasons[name])} for name in host.allowed],
        always_denied=always_denied,
        deny_action=action(host.deny_action),
        exec_after_lockdown=host.exec_after_lockdown,
    )


def learn_report(learned: Learned, output: str | None) -> Doc:
    """``callgate learn --json``: the summary as data, and the policy written."""
    kernel = learned.kernel
    return document(
        "learn",
        module=learned.static.name,
        exit_code=learned.recording.exit_code,
        policy_file=output,
        policy=None if output else learned.text,
        gates={
            "imported": list(learned.static.names()),
            "used": [{"name": plan.spec.name, "calls": plan.calls,
                      "pinned_args": list(plan.pinned), "rules": len(plan.combos)}
                     for plan in learned.gates if plan.calls],
            "denied": [name for name in learned.static.names()
                       if name not in {plan.spec.name for plan in learned.gates}],
        },
        kernel=None if kernel is None else {
            "method": kernel.method,
            "arch": kernel.arch.name,
            "observed": dict(kernel.observed),
            "covered": sorted(kernel.covered),
            "added": sorted({name for rule in kernel.added for name in rule.names}),
            "dropped": {**dict(kernel.denied),
                        **{name: "unknown to callgate's syscall table"
                           for name in kernel.unknown}},
        },
        summary=learned.summary(),
    )
