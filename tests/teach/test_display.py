"""The Jupyter pictures (callgate/teach/display.py, callgate/policy/html.py) without a
notebook: what each object shows, with Graphviz and without it."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import require

from callgate.arch import get_arch
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import load_policy_text
from callgate.runtime.audit import AuditRecord
from callgate.teach import graph
from callgate.teach.display import AuditSummary, Program, explanation_html, policy_program
from callgate.teach.explain import explain_call, explain_program
from callgate.teach.stepper import stepper_page

POLICY = """
[gates]
default = "errno(ENOSYS)"
jitter = "20us"
[[gates.rules]]
names = ["fd_write"]
action = "allow"
args = [{ index = 0, op = "eq", value = 1, width = 32 }]
comment = "stdout only"
[[gates.rules]]
names = ["proc_exit"]
action = "kill_process"
"""

BY_HAND = """
A = args[0]
mem[5] = A
X = A
mem[6] = X
A = mem[5]
if (A == 7) goto seven
return ALLOW
seven:
return ERRNO(3)
"""


@pytest.fixture
def no_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)


def test_policy_shows_rules_actions_and_options() -> None:
    html = load_policy_text(POLICY, source="p.toml").policy._repr_html_()
    assert "<code>p.toml</code>" in html and "stdout only" in html
    assert "args[0] == 0x1 (low 32 bits)" in html
    assert html.count("<tr>") == 4  # a head, two rules, the default
    assert "KILL_PROCESS" in html and "#ef9a9a" in html  # coloured as graph colours kills
    assert "jitter 20000 ns" in html


def test_program_draws_with_graphviz() -> None:
    require(shutil.which("dot") is not None, "Graphviz's dot")
    program = Program.from_asm(BY_HAND, "x86_64", "by hand")
    svg = program._repr_svg_()
    assert svg is not None and svg.startswith("<svg") and "mem[5] = A" in svg
    assert "<svg" in program._repr_html_() and "<pre>" in program._repr_html_()


def test_program_without_graphviz_is_a_listing(no_graphviz: None) -> None:
    program = Program.from_asm(BY_HAND, "x86_64", "by hand")
    assert program._repr_svg_() is None
    html = program._repr_html_()
    assert "<svg" not in html and "Graphviz" in html and "mem[6] = X" in html


def test_trace_shows_registers_memory_and_notes(no_graphviz: None) -> None:
    trace = Program.from_asm(BY_HAND, "x86_64").run("write", 7)
    assert trace.verdict == "ERRNO(3)" and [s.pc for s in trace.steps] == [0, 1, 2, 3, 4, 5, 7]
    assert trace.steps[2].mem[5] == 7 and trace.steps[4].mem[6] == 7 and trace.steps[2].x == 0
    html = trace._repr_html_()
    assert "M[5]=0x7" in html and "M[6]=0x7" in html and "A is 0x7" in html
    assert "<strong>ERRNO(3)</strong>" in html and "0007" in html
    assert repr(trace).endswith("0007: ERRNO(3)>")


def test_policy_program_and_explanation() -> None:
    policy = load_policy_text(POLICY).policy
    program = policy_program(policy)
    assert program.arch.name == "callgate" and program.title == "<policy> [gates]"
    gates = program.arch
    e = explain_call(policy.gates, gates, SeccompData.make(  # type: ignore[arg-type]
        gates.number("fd_write"), gates.audit_arch, (2,)), program)
    html = e._repr_html_()
    assert "0x2 == 0x1  false" in html and "ERRNO(52)" in html and "no match" in html
    p = explain_program(program, gates, SeccompData.make(gates.number("proc_exit"),
                                                         gates.audit_arch, ()))
    assert "KILL_PROCESS" in explanation_html(p) and "<table" in explanation_html(p)
    with pytest.raises(ValueError, match="no \\[kernel\\] section"):
        policy_program(policy, "kernel")


def test_audit_summary_from_counters_and_records() -> None:
    summary = AuditSummary({"fd_write": {"allow": 3, "errno": 1, "trap": 0},
                            "path_open": {"allow": 0}})
    assert summary.counts == {"fd_write": {"allow": 3, "errno": 1}}  # zeros dropped
    svg = summary._repr_svg_()
    assert svg.count("<rect") == 2 and "fd_write" in svg
    assert "<th" in summary._repr_html_()
    records = [AuditRecord(0.0, "p", "path_open", 8, "wasi_snapshot_preview1", (3,),
                           "ERRNO(63)", "denied errno 63") for _ in range(2)]
    assert AuditSummary.from_records(records).counts == {"path_open": {"errno": 2}}


def test_stepper_page_without_graphviz_keeps_the_steps(no_graphviz: None) -> None:
    arch = get_arch("x86_64")
    program = Program.from_asm(BY_HAND, arch)
    e = explain_program(program, arch, SeccompData.make(1, arch.audit_arch, (7,)))
    page = stepper_page(e, program, arch, "by hand")
    assert 'class="missing"' in page and "The listing below shows the same path" in page
    steps = json.loads(re.search(r'id="steps">(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    assert [s["pc"] for s in steps] == [0, 1, 2, 3, 4, 5, 7]
    assert steps[2]["mem"][5] == 7 and steps[-1]["a"] == 7
