"""``callgate graph``: the DOT is the program's control-flow graph, and SVG comes from ``dot``.

The graph is read back with Graphviz itself (``dot -Tjson0``), and compared with
edges this file computes from the instruction fields (class, ``JA`` offset,
``jt``/``jf``), not with callgate's own edge list.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import require

from callgate.asm.assembler import assemble
from callgate.bpf.insn import Insn, pack, unpack
from callgate.cli import main

DEFAULT = Path(__file__).parents[2] / "policies" / "default.toml"

POLICY = """
[kernel]
default = "errno(EPERM)"

[[kernel.rules]]
names = ["read", "write"]
action = "allow"

[[kernel.rules]]
names = ["write"]
action = "kill_process"
args = [{ index = 0, op = "eq", value = 99 }]
"""

# A hand-written program with every kind of edge: fall-through, goto, a jump printed
# as a negated test (jt = 0), one with both targets, and a line no path reaches.
ASM = """\
A = arch
A == ARCH_X86_64 ? next : dead
A = sys_number
A >= 0x40000000 ? dead : next
A == write ? next : deny
A = args[0]
A & 0x1 ? ok : dead
deny:
return ERRNO(1)
goto ok
ok:
return ALLOW
dead:
return KILL_PROCESS
"""


def dot_json(dot_text: str) -> dict:
    """Graphviz's own reading of the DOT text."""
    require(shutil.which("dot") is not None, "graphviz (dot)")
    done = subprocess.run(["dot", "-Tjson0"], input=dot_text.encode(), capture_output=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def expected_edges(program: list[Insn]) -> Counter:
    """(from, to, field) for every edge, straight from the instruction fields."""
    out = Counter()
    for pc, insn in enumerate(program):
        cls = insn.code & 0x07
        if cls == 0x06:  # BPF_RET
            continue
        if cls != 0x05:  # not BPF_JMP
            out[(pc, pc + 1, None)] += 1
        elif insn.code & 0xF0 == 0x00:  # BPF_JA
            out[(pc, pc + 1 + insn.k, None)] += 1
        else:
            out[(pc, pc + 1 + insn.jt, "jt")] += 1
            out[(pc, pc + 1 + insn.jf, "jf")] += 1
    return out


def check_graph(dot_text: str, program: list[Insn]) -> dict:
    """Every instruction a node, every edge present with its label; return nodes by line."""
    graph = dot_json(dot_text)
    nodes = graph["objects"]
    assert len(nodes) == len(program)
    line_of = {}
    for node in nodes:
        pc = int(node["name"][1:])
        line_of[node["_gvid"]] = pc
        assert node["label"].startswith(f"{pc:04d}: ")
    assert sorted(line_of.values()) == list(range(len(program)))
    found = Counter()
    for edge in graph.get("edges", []):
        src, dst = line_of[edge["tail"]], line_of[edge["head"]]
        label = edge.get("label")
        field = label.split(":")[0] if label else None
        found[(src, dst, field)] += 1
        insn = program[src]
        if field is not None:
            # the label's truth is that of the statement as printed; jt == 0 prints the negation
            negated = insn.jt == 0
            truth = "true" if (field == "jt") != negated else "false"
            assert label == f"{field}: {truth}"
    assert found == expected_edges(program)
    returns = {}
    for node in nodes:
        pc = int(node["name"][1:])
        if program[pc].code & 0x07 == 0x06:
            assert node.get("style", "").startswith("filled") and node.get("fillcolor")
            returns[pc] = node["label"].split(": ", 1)[1]
    return returns


def graph_to(tmp_path, *argv, out="g.dot") -> Path:
    path = tmp_path / out
    assert main(["graph", *map(str, argv), "-o", str(path)]) == 0
    return path


def test_policy_graph_matches_the_compiled_program(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    bpf = tmp_path / "p.bpf"
    assert main(["compile", str(policy), "-a", "x86_64", "-o", str(bpf)]) == 0
    program = unpack(bpf.read_bytes())
    dot = graph_to(tmp_path, policy, "-a", "x86_64").read_text()
    returns = check_graph(dot, program)
    assert set(returns.values()) == {"return ALLOW", "return ERRNO(1)", "return KILL_PROCESS"}
    assert "dashed" not in dot  # compiled programs have no unreachable lines
    assert 'label="p.toml' not in dot and f"{policy} [kernel] for x86_64" in dot


def test_shipped_policy_gates_layer(tmp_path):
    bpf = tmp_path / "g.bpf"
    assert main(["compile", str(DEFAULT), "--layer", "gates", "-o", str(bpf)]) == 0
    dot = graph_to(tmp_path, DEFAULT, "--layer", "gates").read_text()
    returns = check_graph(dot, unpack(bpf.read_bytes()))
    assert "return ERRNO(52)" in returns.values()  # WASI ENOSYS, the default


def test_asm_file(tmp_path):
    source = tmp_path / "prog.asm"
    source.write_text(ASM)
    program = assemble(ASM)
    dot = graph_to(tmp_path, source).read_text()
    returns = check_graph(dot, program)
    assert sorted(returns.values()) == ["return ALLOW", "return ERRNO(1)", "return KILL_PROCESS"]
    # "goto ok" after a return is unreachable: drawn dashed
    goto_line = next(pc for pc, insn in enumerate(program) if insn.code == 0x05)
    nodes = {n["name"]: n for n in dot_json(dot)["objects"]}
    assert "dashed" in nodes[f"n{goto_line}"]["style"]
    assert all("dashed" not in n.get("style", "") for name, n in nodes.items()
               if name != f"n{goto_line}")


def test_raw_bpf_file_and_stdout(tmp_path, capsys):
    program = assemble(ASM)
    raw = tmp_path / "prog.bpf"
    raw.write_bytes(pack(program))
    assert main(["graph", str(raw)]) == 0
    check_graph(capsys.readouterr().out, program)


def test_svg(tmp_path):
    require(shutil.which("dot") is not None, "graphviz (dot)")
    source = tmp_path / "prog.asm"
    source.write_text(ASM)
    svg = graph_to(tmp_path, source, out="g.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "return ALLOW" in svg and "jt: true" in svg


def test_svg_without_graphviz_is_a_clear_error(tmp_path, monkeypatch, capsys):
    source = tmp_path / "prog.asm"
    source.write_text(ASM)
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    assert main(["graph", str(source), "-o", str(tmp_path / "g.svg")]) == 2
    err = capsys.readouterr().err
    assert "install graphviz" in err and ".dot" in err
    assert not (tmp_path / "g.svg").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["-o", "g.png"], "name it .dot or .svg"),
        (["--layer", "kernel"], "--layer only apply to a policy"),
        (["--gate-names", "x"], "--gate-names only apply to a policy"),
    ],
)
def test_bad_options(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prog.asm").write_text(ASM)
    assert main(["graph", "prog.asm", *argv]) == 2
    assert message in capsys.readouterr().err


def test_jump_past_the_end_is_refused(tmp_path, capsys):
    raw = tmp_path / "bad.bpf"
    raw.write_bytes(struct.pack("<HBBI", 0x05, 0, 0, 5) + struct.pack("<HBBI", 0x06, 0, 0, 0))
    assert main(["graph", str(raw)]) == 2
    err = capsys.readouterr().err
    assert "line 0000 goes to line 6, past the end" in err
