"""The compiled program decides every call exactly as the reference evaluator does.

Hypothesis draws sections (colliding names, every op and width, all actions). Each
program is verified; then a deterministic sweep (every number the section names and
its neighbours × every boundary value of its constants) runs on the compiled
evaluator, and hypothesis-drawn calls run on both the reference interpreter and
the compiled evaluator.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from strategies import actions_, arg_checks, calls, sections, sweep

from callgate.arch import GATE_ARCH, get_arch
from callgate.bpf import compile_program, interpret, verify
from callgate.bpf.seccomp_data import U64_MASK, SeccompData
from callgate.policy.compiler import PolicyCompileError, compile_section
from callgate.policy.model import Rule, Section
from callgate.policy.reference import decide

ARCHES = [get_arch("x86_64"), get_arch("aarch64"), get_arch("x86"), get_arch("x32"), GATE_ARCH]


@pytest.mark.parametrize("arch", ARCHES, ids=lambda a: a.name)
@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_decision_equals_reference(arch, data):
    section = data.draw(sections(arch))
    program = compile_section(section, arch)
    verify(program)
    fast = compile_program(program)
    for call in sweep(section, arch):
        expected = decide(section, arch, call)
        assert fast(call.nr, call.arch, call.instruction_pointer, *call.args) == expected, call
    for call in data.draw(st.lists(calls(section, arch), min_size=1, max_size=25)):
        expected = decide(section, arch, call)
        assert interpret(program, call).ret == expected, call
        assert fast(call.nr, call.arch, call.instruction_pointer, *call.args) == expected


@st.composite
def large_sections(draw, arch):
    """Dozens of rules over the whole table: programs of hundreds of instructions, long jumps."""
    names = sorted(arch.numbers)
    rules = draw(
        st.lists(
            st.builds(
                lambda picked, action, args: Rule(tuple(picked), action, tuple(args)),
                st.lists(st.sampled_from(names), min_size=1, max_size=8),
                actions_(),
                st.lists(arg_checks(), max_size=3),
            ),
            min_size=30,
            max_size=90,
        )
    )
    return Section(draw(actions_()), tuple(rules))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_large_programs_equal_reference(data):
    arch = get_arch("x86_64")
    section = data.draw(large_sections(arch))
    try:
        program = compile_section(section, arch)
    except PolicyCompileError as exc:
        assert "4096" in str(exc)
        return
    verify(program)
    fast = compile_program(program)
    for rule in section.rules:  # each rule's syscalls with args at its constants
        nrs = [arch.numbers[n] for n in rule.names if n in arch.numbers]
        for check in rule.args:
            for v in (check.value, check.value + 1, check.value2 or 0):
                for nr in nrs[:2]:
                    call = SeccompData.make(nr, arch.audit_arch, [v & U64_MASK] * 6)
                    expected = decide(section, arch, call)
                    assert fast(nr, call.arch, 0, *call.args) == expected, call
    for call in data.draw(st.lists(calls(section, arch), min_size=5, max_size=10)):
        assert interpret(program, call).ret == decide(section, arch, call), call
