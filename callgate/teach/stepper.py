"""One call through a filter, step by step: the data, and a self-contained HTML page.

:func:`trace_steps` runs the reference interpreter and keeps, for every executed line,
the registers as that line found them (``Execution.registers``) and the scratch memory
``M[0..15]`` as it found it (rebuilt from the same run: a ``ST``/``STX`` line stores the A
or X it found). :func:`stepper_page` turns that into one HTML file - no CDN, no network:
the control-flow graph (SVG from Graphviz's ``dot``, when installed) with the path taken
so far lit and the current line marked, A, X and M at each step, the line and what it
did, and previous/next buttons (the arrow keys too; ``#step=N`` in the address opens step
N). ``callgate explain … --html FILE`` writes it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

from callgate.arch import Arch
from callgate.asm.disassembler import listing_lines
from callgate.bpf import opcodes as op
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.teach.explain import Explanation, ProgramExplanation
from callgate.teach.graph import GraphError, program_dot, render_svg


@dataclass(frozen=True)
class Step:
    """One executed line, with the machine state it found."""

    pc: int
    listing: str
    note: str  # what it did: "A is 0x1", "true", … ("" for the last line)
    a: int
    x: int
    mem: tuple[int, ...]  # M[0..15]


def trace_steps(program: Sequence[Insn], arch: Arch, data: SeccompData,
                notes: Sequence[str] = ()) -> tuple[list[Step], int]:
    """Every executed line of ``program`` on ``data`` and the return value.

    ``notes`` (parallel to the path, e.g. from an explanation) annotate the steps."""
    execution = interpret(program, data)
    lines = listing_lines(program, arch)
    mem = [0] * op.BPF_MEMWORDS
    steps = []
    for i, (pc, (a, x)) in enumerate(zip(execution.path, execution.registers, strict=True)):
        note = notes[i] if i < len(notes) else ""
        steps.append(Step(pc, lines[pc], note, a, x, tuple(mem)))
        insn = program[pc]
        cls = op.bpf_class(insn.code)
        if cls == op.BPF_ST:
            mem[insn.k] = a
        elif cls == op.BPF_STX:
            mem[insn.k] = x
    return steps, execution.ret


def data_of(e: Explanation | ProgramExplanation) -> SeccompData:
    return SeccompData.make(e.nr, e.call_arch, e.args, e.ip)


def call_title(e: Explanation | ProgramExplanation) -> str:
    name = e.name or f"nr {e.nr:#x}"
    return f"{name}({', '.join(f'{a:#x}' for a in e.args)})"


def stepper_page(e: Explanation | ProgramExplanation, program: Sequence[Insn], arch: Arch,
                 title: str, reasons: str = "") -> str:
    """The whole page for one explained call; ``reasons``: the text explanation to include."""
    steps, ret = trace_steps(program, arch, data_of(e), [s.note for s in e.path])
    if [s.pc for s in steps] != [p.line for p in e.path]:
        raise AssertionError("the interpreter and the explanation took different paths")
    try:
        svg = render_svg(program_dot(program, arch, title, ids=True)).decode()
        svg = svg[svg.index("<svg"):]  # no XML prolog or DOCTYPE inside HTML
        graph = f'<div id="graph">{svg}</div>'
    except GraphError as exc:
        graph = (f'<div id="graph" class="missing">No picture: {html.escape(str(exc))}. '
                 "The listing below shows the same path.</div>")
    listing = "\n".join(
        f'<tr id="row-{pc}"><td class="pc">{pc:04}</td><td><code>{html.escape(line)}</code>'
        "</td></tr>" for pc, line in enumerate(listing_lines(program, arch)))
    memory = "\n".join(
        "<tr>" + "".join(f'<th>M[{k}]</th><td id="mem-{k}">0x0</td>' for k in range(row, row + 4))
        + "</tr>" for row in range(0, op.BPF_MEMWORDS, 4))
    data = json.dumps([{"pc": s.pc, "line": s.listing, "note": s.note, "a": s.a, "x": s.x,
                        "mem": list(s.mem)} for s in steps])
    verdict = f"{format_action(ret)} (return at line {steps[-1].pc:04})"
    agree = "" if not isinstance(e, Explanation) or e.agree else (
        '<p class="disagree">The policy and the compiled program DISAGREE: a compiler bug.'
        "</p>")
    call = html.escape(call_title(e))
    details = (f"<details open><summary>Why (the policy's reasons)</summary><pre>"
               f"{html.escape(reasons)}</pre></details>") if reasons else ""
    return _PAGE.format(
        call=call, title=html.escape(title), verdict=html.escape(verdict), agree=agree,
        graph=graph, listing=listing, memory=memory,
        steps=data.replace("</", "<\\/"), details=details, n=len(steps),
        nr=f"{e.nr:#x}", arch=f"{e.call_arch:#x}", ip=f"{e.ip:#x}",
        args=html.escape(" ".join(f"{a:#x}" for a in e.args)))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>callgate explain: {call}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
code, pre, td.pc, .regs td, #mem td {{ font-family: monospace; }}
#controls {{ margin: 1em 0; }}
#controls button {{ font-size: 1em; padding: 0.3em 1em; }}
#counter {{ margin: 0 1em; }}
#main {{ display: flex; gap: 2em; align-items: flex-start; flex-wrap: wrap; }}
#graph {{ max-width: 60%; overflow: auto; border: 1px solid #ddd; }}
#graph.missing {{ padding: 1em; color: #a00; }}
#graph svg {{ max-width: 100%; height: auto; }}
#graph g.node.taken polygon, #graph g.node.taken ellipse {{ stroke: #1565c0; stroke-width: 3px; }}
#graph g.edge.taken path {{ stroke: #1565c0; stroke-width: 3px; }}
#graph g.edge.taken polygon {{ stroke: #1565c0; fill: #1565c0; }}
#graph g.node.current polygon {{ fill: #ffeb3b; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}
#listing tr.taken td {{ background: #e3f2fd; }}
#listing tr.current td {{ background: #ffeb3b; }}
.disagree {{ color: #a00; font-weight: bold; }}
#line {{ font-size: 1.1em; }}
</style>
</head>
<body>
<h1>callgate explain: <code>{call}</code></h1>
<p>{title}<br>seccomp_data: nr {nr}, arch {arch}, ip {ip}; args <code>{args}</code></p>
<p>Verdict: <strong id="verdict">{verdict}</strong></p>
{agree}
<div id="controls">
<button id="prev" type="button">&#9664; previous</button>
<span id="counter">step 1 of {n}</span>
<button id="next" type="button">next &#9654;</button>
</div>
<div id="main">
{graph}
<div id="state">
<p id="line"><code id="line-text"></code></p>
<p>what it did: <span id="note"></span></p>
<p>as this line found them:</p>
<table class="regs"><tr><th>A</th><td id="reg-a">0x0</td></tr>
<tr><th>X</th><td id="reg-x">0x0</td></tr></table>
<p>scratch memory:</p>
<table id="mem">
{memory}
</table>
</div>
</div>
{details}
<h2>The program</h2>
<table id="listing">
{listing}
</table>
<script type="application/json" id="steps">{steps}</script>
<script>
(function () {{
  "use strict";
  var steps = JSON.parse(document.getElementById("steps").textContent);
  var cur = 0;
  function hex(n) {{ return "0x" + n.toString(16); }}
  function byId(id) {{ return document.getElementById(id); }}
  function mark(el, cls) {{ if (el) {{ el.classList.add(cls); }} }}
  function show(i) {{
    cur = Math.max(0, Math.min(steps.length - 1, i));
    var s = steps[cur];
    byId("reg-a").textContent = hex(s.a);
    byId("reg-x").textContent = hex(s.x);
    for (var k = 0; k < s.mem.length; k++) {{ byId("mem-" + k).textContent = hex(s.mem[k]); }}
    byId("line-text").textContent = s.line;
    byId("note").textContent = s.note || (cur === steps.length - 1 ? "returns" : "-");
    byId("counter").textContent = "step " + (cur + 1) + " of " + steps.length;
    var lit = document.querySelectorAll(".taken, .current");
    for (var j = 0; j < lit.length; j++) {{ lit[j].classList.remove("taken", "current"); }}
    for (var t = 0; t <= cur; t++) {{
      mark(byId("n" + steps[t].pc), "taken");
      mark(byId("row-" + steps[t].pc), "taken");
      if (t > 0) {{ mark(byId("e" + steps[t - 1].pc + "-" + steps[t].pc), "taken"); }}
    }}
    mark(byId("n" + s.pc), "current");
    mark(byId("row-" + s.pc), "current");
    byId("prev").disabled = cur === 0;
    byId("next").disabled = cur === steps.length - 1;
    document.body.setAttribute("data-step", String(cur + 1));
    if (history.replaceState) {{ history.replaceState(null, "", "#step=" + (cur + 1)); }}
  }}
  byId("prev").addEventListener("click", function () {{ show(cur - 1); }});
  byId("next").addEventListener("click", function () {{ show(cur + 1); }});
  document.addEventListener("keydown", function (ev) {{
    if (ev.key === "ArrowRight") {{ show(cur + 1); }}
    if (ev.key === "ArrowLeft") {{ show(cur - 1); }}
  }});
  var m = /step=(\\d+)/.exec(location.hash);
  show(m ? parseInt(m[1], 10) - 1 : 0);
}})();
</script>
</body>
</html>
"""
