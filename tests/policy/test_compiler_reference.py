"""The compiled program decides every call exactly as the reference evaluator does.

Hypothesis draws sections (colliding names, every op and width, all actions). Each
program is verified; then a deterministic sweep (every number the section names and
its neighbours × every boundary value of its constants) runs on the compiled
evaluator, and hypothesis-drawn calls run on both the reference interpreter and
the compiled evaluator.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import calls, sections, sweep

from callgate.arch import GATE_ARCH, get_arch
from callgate.bpf import compile_program, interpret, verify
from callgate.policy.compiler import compile_section
from callgate.policy.reference import decide

ARCHES = [get_arch("x86_64"), get_arch("aarch64"), get_arch("x86"), get_arch("x32"), GATE_ARCH]


@pytest.mark.parametrize("arch", ARCHES, ids=lambda a: a.name)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
