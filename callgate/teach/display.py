"""Pictures in Jupyter: programs, traces, explanations, policies and audit counts that
display themselves (``_repr_svg_`` / ``_repr_html_``).

- :class:`Program` - a ``list[Insn]`` with an arch and a title: its control-flow graph
  (SVG through Graphviz's ``dot`` when installed) above its listing; ``run()`` gives a
  :class:`Trace`.
- :class:`Trace` - one call through a program, as ``callgate emu`` runs it: the graph
  with the path lit, and a table of the steps with A, X and the scratch memory each line
  found, and what it did.
- :func:`explanation_html` - what :class:`~callgate.teach.explain.Explanation` and
  :class:`~callgate.teach.explain.ProgramExplanation` show: the verdict, the rules with
  each comparison, and the path.
- :class:`AuditSummary` - a plugin's calls by gate and verdict (``Plugin.counters``, or
  audit records), as a table and a bar chart drawn in plain SVG.
- A :class:`~callgate.policy.model.Policy` shows itself as tables
  (:mod:`callgate.policy.html`); :func:`policy_program` draws its compiled section.

No new dependency: the graphs are :mod:`callgate.teach.graph`'s DOT rendered by ``dot``;
without Graphviz, everything falls back to HTML tables.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from callgate.arch import Arch, get_arch
from callgate.asm.assembler import assemble
from callgate.asm.disassembler import listing_lines
from callgate.bpf import opcodes as op
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import Policy
from callgate.policy.compiler import compile_section
from callgate.policy.html import action_cell
from callgate.policy.model import Layer
from callgate.teach.explain import Explanation, ProgramExplanation, explain_program
from callgate.teach.explain_text import check_text
from callgate.teach.graph import GraphError, program_dot, render_svg
from callgate.teach.stepper import Step, call_title, trace_steps

_CELL = "border:1px solid #ccc;padding:2px 6px;text-align:left;font-family:monospace"


def _svg(program: Sequence[Insn], arch: Arch, title: str, path: Sequence[int] = ()
         ) -> str | None:
    """The graph as SVG text, or None without Graphviz (or for a program it cannot draw)."""
    try:
        svg = render_svg(program_dot(program, arch, title, path=path)).decode()
    except GraphError:
        return None
    return svg[svg.index("<svg"):]


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = ['<table style="border-collapse:collapse"><tr>']
    out += [f'<th style="{_CELL}">{html.escape(h)}</th>' for h in head]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>" + "".join(
            cell if cell.startswith("<td") else f'<td style="{_CELL}">{cell}</td>'
            for cell in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


class Program(list[Insn]):
    """A cBPF program that draws itself: ``Program(insns, arch, title)``."""

    def __init__(self, insns: Iterable[Insn], arch: Arch | str = "x86_64",
                 title: str = "program") -> None:
        super().__init__(insns)
        self.arch = get_arch(arch) if isinstance(arch, str) else arch
        self.title = title

    @classmethod
    def from_asm(cls, text: str, arch: Arch | str = "x86_64", title: str = "program",
                 ) -> Program:
        resolved = get_arch(arch) if isinstance(arch, str) else arch
        return cls(assemble(text, resolved), resolved, title)

    def listing(self) -> str:
        return "\n".join(listing_lines(self, self.arch)) + "\n"

    def run(self, call: str | int, *args: int, arch_value: int | None = None,
            ip: int = 0) -> Trace:
        """One call through the program, as ``callgate emu`` runs it."""
        nr = call if isinstance(call, int) else self.arch.number(call)
        data = SeccompData.make(nr, self.arch.audit_arch if arch_value is None else arch_value,
                                args, ip)
        return Trace(self, data)

    def _repr_svg_(self) -> str | None:
        return _svg(self, self.arch, self.title)

    def _repr_html_(self) -> str:
        svg = self._repr_svg_() or "<p><em>(no graph: Graphviz's dot is not installed)</em></p>"
        lines = listing_lines(self, self.arch)
        return (f"<div><p><strong>{html.escape(self.title)}</strong>: {len(self)} "
                f"instructions, {html.escape(self.arch.name)}</p>{svg}"
                f"<pre>{html.escape(chr(10).join(lines))}</pre></div>")


def policy_program(policy: Policy, layer: Layer | str = Layer.GATES,
                   arch: Arch | str | None = None) -> Program:
    """A policy's section compiled, as callgate compile does, as a :class:`Program`."""
    section = policy.section(layer)
    if section is None:
        raise ValueError(f"policy {policy.source} has no [{Layer(layer).value}] section")
    if arch is None:
        resolved = get_arch("callgate" if Layer(layer) is Layer.GATES else "x86_64")
    else:
        resolved = get_arch(arch) if isinstance(arch, str) else arch
    return Program(compile_section(section, resolved), resolved,
                   f"{policy.source} [{Layer(layer).value}]")


class Trace:
    """One call through a :class:`Program`: every executed line and the state it found."""

    def __init__(self, program: Program, data: SeccompData) -> None:
        self.program = program
        self.data = data
        notes = [p.note for p in explain_program(program, program.arch, data).path]
        self.steps: list[Step]
        self.steps, self.ret = trace_steps(program, program.arch, data, notes)

    @property
    def verdict(self) -> str:
        return format_action(self.ret)

    def __repr__(self) -> str:
        return (f"<Trace {len(self.steps)} steps, lines "
                f"{' '.join(f'{s.pc:04}' for s in self.steps)}: {self.verdict}>")

    def _repr_html_(self) -> str:
        name = self.program.arch.name_of(self.data.nr) or f"nr {self.data.nr:#x}"
        svg = _svg(self.program, self.program.arch, self.program.title,
                   [s.pc for s in self.steps]) or ""
        rows = []
        previous: tuple[int, ...] = (0,) * op.BPF_MEMWORDS
        for s in self.steps:
            changed = ", ".join(f"M[{k}]={v:#x}" for k, (v, was) in
                                enumerate(zip(s.mem, previous, strict=True)) if v != was)
            previous = s.mem
            rows.append((f"{s.pc:04}", html.escape(s.listing.split(None, 5)[-1]),
                         f"{s.a:#x}", f"{s.x:#x}", changed, html.escape(s.note)))
        args = ", ".join(f"{a:#x}" for a in self.data.args)
        return (f"<div><p><strong>{html.escape(name)}({args})</strong> through "
                f"{html.escape(self.program.title)}: <strong>{html.escape(self.verdict)}"
                f"</strong> after {len(self.steps)} lines</p>{svg}"
                + "<p>A, X and M as each line found them, and what the line did:</p>"
                + _table(("line", "statement", "A", "X", "M changed", "did"), rows)
                + "</div>")


def explanation_html(e: Explanation | ProgramExplanation) -> str:
    """An explanation as HTML: the call, the rules and comparisons, the path, the verdict."""
    out = [f"<div><p><strong>{html.escape(call_title(e))}</strong> "
           f"(nr {e.nr:#x}, arch {e.call_arch:#x}) - verdict "
           f"<code>{html.escape(format_action(e.bpf))}</code></p>"]
    if isinstance(e, Explanation):
        if not e.agree:
            out.append("<p style='color:#a00'><strong>DISAGREEMENT</strong> between the "
                       "policy and its compiled program: a compiler bug</p>")
        out.append(f"<p>{html.escape(e.reason)}</p>")
        rows = []
        for r in e.rules:
            checks = "<br>".join(
                html.escape(f"{written}   {evaluated}")
                for written, evaluated in (check_text(c) for c in r.checks)) or "always"
            verdict = ("matches" if r.matched else "no match") + (
                " (decides)" if r.number in e.winners else "")
            rows.append((str(r.number), html.escape(r.path), html.escape(", ".join(r.names)),
                         action_cell(r.action), checks, verdict))
        if rows:
            out.append(_table(("rule", "where", "names", "action", "checks", "outcome"),
                              rows))
    steps = [(f"{p.line:04}", html.escape(p.listing.split(None, 5)[-1]), html.escape(p.note))
             for p in e.path]
    out.append(f"<p>The compiled program ({e.program_length} instructions), the path:</p>")
    out.append(_table(("line", "statement", "what it did"), steps))
    out.append("</div>")
    return "".join(out)


class AuditSummary:
    """How many calls of each gate got each verdict, drawn as a table and stacked bars."""

    COLOURS: ClassVar[dict[str, str]] = {
        "allow": "#66bb6a", "log": "#9ccc65", "errno": "#ffa726", "trap": "#ff7043",
        "user_notif": "#fdd835", "trace": "#fdd835", "kill_thread": "#e53935",
        "kill_process": "#b71c1c"}

    def __init__(self, counts: Mapping[str, Mapping[str, int]], title: str = "calls") -> None:
        self.counts = {gate: {k: v for k, v in kinds.items() if v}
                       for gate, kinds in counts.items() if any(kinds.values())}
        self.title = title

    @classmethod
    def from_records(cls, records: Iterable[object], title: str = "audit records",
                     ) -> AuditSummary:
        """From :class:`~callgate.runtime.audit.AuditRecord`\\ s: their ``gate`` and the
        action they name (``ERRNO(63)`` counts as errno)."""
        counts: dict[str, dict[str, int]] = {}
        for record in records:
            gate = str(getattr(record, "gate", "?"))
            kind = str(getattr(record, "action", "?")).split("(")[0].lower()
            slot = counts.setdefault(gate, {})
            slot[kind] = slot.get(kind, 0) + 1
        return cls(counts, title)

    def __repr__(self) -> str:
        return f"<AuditSummary {self.title}: {self.counts}>"

    def _repr_svg_(self) -> str:
        width, bar, label = 640, 18, 170
        gates = sorted(self.counts, key=lambda g: -sum(self.counts[g].values()))
        most = max((sum(k.values()) for k in self.counts.values()), default=1) or 1
        height = 30 + bar * 1.4 * max(1, len(gates))
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
                 f'height="{height:.0f}" font-family="monospace" font-size="12">',
                 f'<text x="4" y="14">{html.escape(self.title)} (of {most} at most)</text>']
        for row, gate in enumerate(gates):
            y = 24 + row * bar * 1.4
            parts.append(f'<text x="4" y="{y + bar - 5:.0f}">{html.escape(gate)}</text>')
            x = float(label)
            for kind, n in self.counts[gate].items():
                w = (width - label - 60) * n / most
                colour = self.COLOURS.get(kind, "#90a4ae")
                parts.append(f'<rect x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="{bar}" '
                             f'fill="{colour}"><title>{html.escape(kind)}: {n}</title></rect>')
                x += w
            parts.append(f'<text x="{x + 4:.1f}" y="{y + bar - 5:.0f}">'
                         f"{sum(self.counts[gate].values())}</text>")
        parts.append("</svg>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        kinds = sorted({k for v in self.counts.values() for k in v},
                       key=lambda k: list(self.COLOURS).index(k) if k in self.COLOURS else 99)
        rows = [(html.escape(g), *(str(self.counts[g].get(k, 0)) for k in kinds))
                for g in sorted(self.counts)]
        return f"<div>{self._repr_svg_()}" + _table(("gate", *kinds), rows) + "</div>"
