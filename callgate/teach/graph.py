"""A classic-BPF program's control-flow graph: Graphviz DOT, and SVG through Graphviz's ``dot``.

Every instruction is one node, labelled with its line number and statement exactly
as ``callgate disasm`` prints them, so the picture and the listing can be read
side by side. Edges:

- an ordinary instruction flows to the next line (no label);
- ``goto`` (``JA``) jumps to its target (no label);
- a conditional jump has two edges, labelled with the field they come from and
  the truth of the condition *as the listing prints it*: ``jt: true`` and ``jf:
  false`` for ``if (A == k) goto JT else goto JF``. The listing prints a jump
  whose ``jt`` is 0 as the negated test, ``if (A != k) goto JF``, so there the
  edges read ``jt: false`` and ``jf: true``. ``.insn`` lines print no condition:
  their edges are labelled ``jt`` and ``jf``.

Return nodes are filled in a colour per action (green allow … red kill); lines no
path reaches are dashed. A program whose jumps leave it cannot be drawn and is
refused (the kernel refuses it too).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Sequence
from typing import NamedTuple

from callgate.arch import Arch
from callgate.asm.disassembler import statements
from callgate.asm.syntax import LINE_LABEL, RAW_DIRECTIVE
from callgate.bpf import opcodes as op
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    effective_action,
)
from callgate.bpf.insn import Insn, flow
from callgate.errors import CallgateError

DOT_TIMEOUT_SECONDS = 60.0

# Return nodes: green for allow, yellow for "someone else decides", orange for a
# failed call, red for a kill.
ACTION_COLOURS = {
    SECCOMP_RET_ALLOW: "#c8e6c9",
    SECCOMP_RET_LOG: "#dcedc8",
    SECCOMP_RET_TRACE: "#fff9c4",
    SECCOMP_RET_USER_NOTIF: "#fff9c4",
    SECCOMP_RET_ERRNO: "#ffe0b2",
    SECCOMP_RET_TRAP: "#ffccbc",
    SECCOMP_RET_KILL_THREAD: "#ef9a9a",
    SECCOMP_RET_KILL_PROCESS: "#ef9a9a",
}
RETURN_A_COLOUR = "#e0e0e0"  # ``return A``: the action is not known until run time
LIT_COLOUR = "#1565c0"  # the lines and edges one run took


class GraphError(CallgateError, ValueError):
    """A program that cannot be drawn, or a ``dot`` run that failed."""


class GraphvizMissing(GraphError):
    """SVG was asked for, but Graphviz's ``dot`` is not installed."""


class Edge(NamedTuple):
    source: int
    target: int
    field: str  # "next", "goto", "jt" or "jf"


def edges(program: Sequence[Insn]) -> list[Edge]:
    """Every control-flow edge, in line order; refuses jumps and fall-throughs past the end."""
    out = []
    for pc, insn in enumerate(program):
        found = [Edge(pc, target, field) for field, target in flow(insn, pc)]
        for edge in found:
            if edge.target >= len(program):
                raise GraphError(
                    f"line {LINE_LABEL.format(line=pc)} goes to line {edge.target}, past the "
                    f"end of this {len(program)}-instruction program; the kernel would refuse "
                    "it (`callgate emu` says why)"
                )
        out += found
    return out


def reachable(program: Sequence[Insn], all_edges: Sequence[Edge]) -> set[int]:
    """Lines some path from line 0 reaches."""
    successors: dict[int, list[int]] = {}
    for edge in all_edges:
        successors.setdefault(edge.source, []).append(edge.target)
    seen = {0} if program else set()
    todo = list(seen)
    while todo:
        for nxt in successors.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def program_dot(program: Sequence[Insn], arch: Arch | str | None, title: str, *,
                ids: bool = False, path: Sequence[int] = ()) -> str:
    """The DOT text of ``program``'s control-flow graph; names resolve as in its listing.

    ``ids``: give every node the id ``n<line>`` and every edge ``e<from>-<to>`` in the SVG
    Graphviz draws, for a page to light them (``callgate explain --html``). ``path``: the
    lines one run executed, in order; their nodes and the edges between them are drawn
    lit (blue, bold), for a picture of one call's way through.
    """
    if not program:
        raise GraphError("the program is empty: there is nothing to draw")
    texts = statements(program, arch)
    all_edges = edges(program)
    live = reachable(program, all_edges)
    lit_nodes = set(path)
    lit_edges = set(itertools.pairwise(path))
    lines = [
        "digraph bpf {",
        f"  graph [label={_quote(title)}, labelloc=t, fontname=monospace];",
        "  node [shape=box, fontname=monospace];",
        "  edge [fontname=monospace];",
    ]
    for pc, (insn, text) in enumerate(zip(program, texts, strict=True)):
        attrs = [f"label={_quote(f'{LINE_LABEL.format(line=pc)}: {text}')}"]
        if ids:
            attrs.append(f'id="n{pc}"')
        if pc in lit_nodes:
            attrs += [f'color="{LIT_COLOUR}"', "penwidth=2.5"]
        styles = []
        if op.bpf_class(insn.code) == op.BPF_RET:
            styles.append("filled")
            attrs.append(f'fillcolor="{_return_colour(insn)}"')
        if pc not in live:
            styles.append("dashed")
            attrs += ["fontcolor=gray40", 'tooltip="no path reaches this line"']
        if styles:
            attrs.append(f'style="{",".join(styles)}"')
        lines.append(f"  n{pc} [{', '.join(attrs)}];")
    for edge in all_edges:
        edge_attrs = _edge_attrs(edge, program[edge.source], texts[edge.source])
        extra = []
        if ids:
            extra.append(f'id="e{edge.source}-{edge.target}"')
        if (edge.source, edge.target) in lit_edges:
            extra.append(f'penwidth=3, color="{LIT_COLOUR}"')
        if extra:
            joined = ", ".join(extra)
            edge_attrs = f"{edge_attrs[:-1]}, {joined}]" if edge_attrs else f" [{joined}]"
        lines.append(f"  n{edge.source} -> n{edge.target}{edge_attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _return_colour(insn: Insn) -> str:
    if op.bpf_rval(insn.code) == op.BPF_A:
        return RETURN_A_COLOUR
    return ACTION_COLOURS[effective_action(insn.k)]


def edge_label(edge: Edge, insn: Insn, text: str) -> str:
    """``jt: true``, ``jf: false`` …: the field, and the truth of the statement as printed."""
    if text.startswith(RAW_DIRECTIVE):
        return edge.field
    negated = insn.jt == 0  # printed as the negated test, whose "true" edge is jf
    truth = "true" if (edge.field == "jt") != negated else "false"
    return f"{edge.field}: {truth}"


def _edge_attrs(edge: Edge, insn: Insn, text: str) -> str:
    if edge.field in ("next", "goto"):
        return ""
    label = edge_label(edge, insn, text)
    colour = "red3" if label.endswith("false") or label == "jf" else "darkgreen"
    return f' [label="{label}", color={colour}, fontcolor={colour}]'


def render_svg(dot_text: str, timeout: float = DOT_TIMEOUT_SECONDS) -> bytes:
    """Run Graphviz's ``dot -Tsvg`` on ``dot_text``."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(
            "Graphviz's `dot` is not installed, so no SVG can be drawn; install graphviz "
            "(e.g. `apt install graphviz`) or write DOT instead (-o FILE.dot)"
        )
    try:
        done = subprocess.run(
            [exe, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphError(
            f"`dot` did not finish in {timeout:g} s; write DOT (-o FILE.dot) and render it "
            "with other options (e.g. `dot -Tsvg -Gsplines=false`)"
        ) from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise GraphError(f"`dot` failed: {why}")
    return done.stdout


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
