"""``callgate.teach.explain``: the explanation's verdict is the emulator's, and its reasons hold.

The property test draws sections and calls with the policy compiler's strategies
(colliding names, every op and width, x32, ``-1``, foreign arches, boundary
arguments) and checks the explanation against the interpreter run directly on the
compiled program, and its rule list against the section, recomputed here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).parents[1] / "policy"))
from strategies import calls, sections

from callgate.arch import GATE_ARCH, get_arch
from callgate.asm.assembler import assemble
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_LOG,
)
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy.compiler import compile_section
from callgate.policy.model import ArgCheck, Op, Rule, Section
from callgate.teach.explain import Stage, explain_call
from callgate.teach.explain_text import check_text, render_text, width_note

ARCHES = [get_arch("x86_64"), get_arch("aarch64"), get_arch("x86"), get_arch("x32"), GATE_ARCH]
X86_64 = get_arch("x86_64")
GOTO = re.compile(r"goto (\d{4})")


@pytest.mark.parametrize("arch", ARCHES, ids=lambda a: a.name)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_explanation_verdict_is_the_emulators(arch, data):
    section = data.draw(sections(arch))
    program = compile_section(section, arch)
    drawn = data.draw(st.lists(calls(section, arch), min_size=1, max_size=8))
    for call in drawn + _aimed_calls(section, arch):
        e = explain_call(section, arch, call, program)
        run = interpret(program, call)
        assert e.bpf == run.ret
        assert e.explained == run.ret, (e.stage, e.reason)
        assert e.reference == run.ret
        assert e.agree
        assert [step.line for step in e.path] == list(run.path)
        _check_rules(section, arch, call, e)


def _satisfying(check: ArgCheck) -> int:
    """An argument for which ``check`` holds, where one exists (else something near it)."""
    v = check.value
    near = {Op.EQ: v, Op.LE: v, Op.GE: v, Op.GT: v + 1, Op.LT: v - 1, Op.NE: v + 1}
    arg = check.value2 if check.op is Op.MASKED_EQ else near[check.op]
    return arg % (1 << check.width)


def _aimed_calls(section, arch):
    """Per rule, its syscalls with args that make its checks hold: several rules then
    match the same call, which is where most-restrictive-wins has work to do."""
    out = []
    for rule in section.rules:
        args = [0] * 6
        for check in rule.args:
            args[check.index] = _satisfying(check)
        for name in rule.names:
            if name in arch.numbers:
                out.append(SeccompData.make(arch.numbers[name], arch.audit_arch, args))
    return out


def _check_rules(section, arch, call, e):
    """The listed rules are exactly those naming the call, and the winners are right."""
    if e.stage not in (Stage.RULES, Stage.DEFAULT):
        assert e.rules == () and e.winners == ()
        return
    naming = [
        i + 1
        for i, rule in enumerate(section.rules)
        if any(arch.numbers.get(name) == call.nr for name in rule.names)
    ]
    assert [r.number for r in e.rules] == naming
    for r in e.rules:
        assert r.matched == all(c.holds for c in r.checks)
        assert r.action == section.rules[r.number - 1].action
    matched = [r for r in e.rules if r.matched]
    assert (e.stage is Stage.DEFAULT) == (not matched)
    if e.stage is Stage.DEFAULT:
        assert e.explained == section.default
    else:
        assert e.winners == tuple(r.number for r in matched if r.action == e.explained)
        assert e.winners


def test_a_wrong_program_is_a_disagreement():
    section = Section(default=SECCOMP_RET_ERRNO | 1)
    wrong = assemble("return ALLOW\n")
    e = explain_call(section, X86_64, SeccompData.make(0, X86_64.audit_arch), wrong)
    assert e.reference == e.explained == SECCOMP_RET_ERRNO | 1
    assert e.bpf == SECCOMP_RET_ALLOW
    assert not e.agree
    assert "DISAGREEMENT" in render_text(e, "test")


def _rule_section():
    return Section(
        default=SECCOMP_RET_ERRNO | 1,
        rules=(
            Rule(("write",), SECCOMP_RET_ALLOW),
            Rule(("write",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(0, Op.EQ, 0x100000001),)),
            Rule(("write", "read"), SECCOMP_RET_LOG, (ArgCheck(1, Op.GE, 5, width=32),)),
            Rule(("write",), SECCOMP_RET_ERRNO | 13, (ArgCheck(2, Op.MASKED_EQ, 0xF0, 0x30),)),
            Rule(("write",), SECCOMP_RET_ERRNO | 9, (ArgCheck(2, Op.MASKED_EQ, 0xF0, 0x30),)),
            Rule(("close",), SECCOMP_RET_ALLOW),
        ),
    )


def _explain(*args, nr="write"):
    section = _rule_section()
    call = SeccompData.make(X86_64.number(nr), X86_64.audit_arch, list(args))
    return explain_call(section, X86_64, call, compile_section(section, X86_64))


def test_most_restrictive_wins_and_says_why():
    e = _explain(0x100000001, 7)
    assert e.stage is Stage.RULES
    assert [r.number for r in e.rules] == [1, 2, 3, 4, 5]  # close's rule does not name write
    assert [r.matched for r in e.rules] == [True, True, True, False, False]
    assert e.winners == (2,)
    assert e.explained == e.bpf == SECCOMP_RET_KILL_PROCESS
    assert "most restrictive" in e.reason and "KILL_PROCESS" in e.reason


def test_equal_actions_smaller_data_wins():
    e = _explain(0, 0, 0x3F)  # 0x3f & 0xf0 == 0x30: rules 4 and 5 match, with rule 1
    assert e.winners == (5,)
    assert e.explained == e.bpf == SECCOMP_RET_ERRNO | 9
    assert "smaller data wins" in e.reason


def test_no_match_is_the_default():
    e = _explain(2, 4, nr="read")
    assert e.stage is Stage.DEFAULT
    assert [r.matched for r in e.rules] == [False]
    assert e.explained == e.bpf == SECCOMP_RET_ERRNO | 1
    e = _explain(nr="getpid")
    assert e.rules == () and "no rule names getpid" in e.reason


def test_comparisons_show_their_values():
    e = _explain(0x200000001, 0xFFFFFFFF00000005)
    by_number = {r.number: r for r in e.rules}
    eq64 = by_number[2].checks[0]
    assert check_text(eq64) == ("args[0] == 0x100000001", "0x200000001 == 0x100000001  false")
    assert width_note(eq64) == "64-bit: high words 0x2 vs 0x1, then low words 0x1 vs 0x1"
    ge32 = by_number[3].checks[0]
    assert ge32.compared == 5 and ge32.holds
    assert check_text(ge32) == ("args[1] >= 0x5 (low 32 bits)", "0x5 >= 0x5  true")
    assert "high word 0xffffffff ignored" in width_note(ge32)
    masked = by_number[4].checks[0]
    assert check_text(masked) == ("args[2] & 0xf0 == 0x30", "0x0 & 0xf0 = 0x0 == 0x30  false")


@pytest.mark.parametrize(
    "nr,arch_value,stage",
    [
        (0, get_arch("x86").audit_arch, Stage.ARCH_MISMATCH),
        (0x40000001, X86_64.audit_arch, Stage.WRONG_ABI),
    ],
)
def test_mismatch_stages(nr, arch_value, stage):
    section = _rule_section()
    call = SeccompData.make(nr, arch_value)
    e = explain_call(section, X86_64, call, compile_section(section, X86_64))
    assert e.stage is stage and e.rules == ()
    assert e.explained == e.bpf == SECCOMP_RET_KILL_PROCESS
    assert "mismatch action KILL_PROCESS" in e.reason


def test_enosys_above():
    section = Section(default=SECCOMP_RET_ALLOW, enosys_above=10)
    call = SeccompData.make(11, X86_64.audit_arch)
    e = explain_call(section, X86_64, call, compile_section(section, X86_64))
    assert e.stage is Stage.ENOSYS_ABOVE
    assert e.explained == e.bpf == SECCOMP_RET_ERRNO | 38


def test_path_notes_are_what_the_lines_did():
    """Loads note the word loaded (from the record, here); tests note the branch taken."""
    e = _explain(0x100000001, 7)
    assert {step.note for step in e.path} >= {"true", "false", "A is 0x1"}
    words = {"arch": X86_64.audit_arch, "sys_number": 1, "args[0]": 1, "args[0] >> 32": 1,
             "args[1]": 7, "args[1] >> 32": 0}
    for step, nxt in zip(e.path, [*e.path[1:], None], strict=True):
        statement = step.listing.split("  ", 1)[1]
        if m := re.fullmatch(r"A = (.+)", statement):
            assert step.note == f"A is {words[m.group(1)]:#x}"
        elif statement.startswith("if"):
            targets = [int(t) for t in GOTO.findall(statement)]
            # the printed condition holds when the path goes to the first goto target
            assert step.note == ("true" if nxt.line == targets[0] else "false")
        else:
            assert step.note == ""
