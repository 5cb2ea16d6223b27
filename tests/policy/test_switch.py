"""Runs of ``eq`` checks on one argument compile to a search tree (callgate.policy.switch).

Meaning first: on random sections with many pinned values (every action, both widths,
high words other than 0, further checks, rules of other shapes in between), the
reference decision procedure, the interpreter and the compiled function agree, and so
does libseccomp where it can say the same policy. Then shape, as instruction counts:
the path for 100 or 1000 pinned values is logarithmic, neighbouring values merge, and
1000 values fit the kernel's limit that a chain of them would not. The kernel itself
runs one such filter in a child.
"""

from __future__ import annotations

import errno
import math
import random

import pytest
from conftest import require
from hypothesis import HealthCheck, given, reject, settings, strategies as st
from libseccomp_oracle import AVAILABLE, NotExpressible, libseccomp_program
from strategies import calls, eq_heavy_sections, oracle_eq_sections, sweep

from callgate.arch import GATE_ARCH, X32_SYSCALL_BIT, Arch, get_arch, native_arch
from callgate.bpf import compile_program, interpret, verify
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_LOG,
)
from callgate.bpf.opcodes import BPF_JA, BPF_JMP, bpf_class
from callgate.bpf.seccomp_data import U64_MASK, SeccompData
from callgate.bpf.specialize import specialize
from callgate.kernel.child import SyscallOutcome, probe_syscalls
from callgate.policy.compiler import compile_section
from callgate.policy.model import ArgCheck, Op, Rule, Section
from callgate.policy.plan import Branch, plan_section
from callgate.policy.reference import decide
from callgate.policy.switch import MIN_VALUES, Switch, split_runs

ARCHES = [get_arch("x86_64"), get_arch("aarch64"), get_arch("x86"), get_arch("x32"), GATE_ARCH]
X86_64 = get_arch("x86_64")
EPERM = SECCOMP_RET_ERRNO | 1
FD_WRITE = GATE_ARCH.number("fd_write")
JA = BPF_JMP | BPF_JA


def _agree(section, arch, program, call, fast=None):
    expected = decide(section, arch, call)
    assert interpret(program, call).ret == expected, call
    fast = fast or compile_program(program)
    assert fast(call.nr, call.arch, call.instruction_pointer, *call.args) == expected, call


# -- meaning -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES, ids=lambda a: a.name)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_many_eq_values_decide_as_the_reference(arch, data):
    section = data.draw(eq_heavy_sections(arch))
    program = compile_section(section, arch)
    verify(program)
    fast = compile_program(program)
    for call in sweep(section, arch):
        expected = decide(section, arch, call)
        assert fast(call.nr, call.arch, call.instruction_pointer, *call.args) == expected, call
    for call in data.draw(st.lists(calls(section, arch), min_size=1, max_size=25)):
        _agree(section, arch, program, call)


@pytest.mark.parametrize("arch", [native_arch(), get_arch("aarch64")], ids=lambda a: a.name)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_many_eq_values_decide_as_libseccomp(arch, data):
    require(AVAILABLE, "pyseccomp (libseccomp)")
    section = data.draw(oracle_eq_sections(arch))
    try:
        theirs = libseccomp_program(section, arch)
    except NotExpressible:
        reject()
    ours = compile_section(section, arch)
    ours_fast, theirs_fast = compile_program(ours), compile_program(theirs)
    drawn = data.draw(st.lists(calls(section, arch), min_size=1, max_size=20))
    for call in sweep(section, arch) + drawn:
        values = (call.nr, call.arch, call.instruction_pointer, *call.args)
        expected = decide(section, arch, call)
        assert ours_fast(*values) == theirs_fast(*values) == expected, call
    for call in drawn:
        assert interpret(ours, call).ret == interpret(theirs, call).ret, call


def test_libseccomp_is_asked_about_switches():
    """The oracle sections really build switches, and libseccomp really takes them."""
    require(AVAILABLE, "pyseccomp (libseccomp)")
    rng = random.Random(7)
    values = [*rng.sample(range(1 << 20), 60), 1 << 32, 3 << 32 | 5, U64_MASK]
    rules = tuple(Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, v),)) for v in values)
    section = Section(EPERM, rules)
    assert any(isinstance(p, Switch) for p in split_runs(_branches(section, X86_64, "read")))
    ours, theirs = compile_section(section, X86_64), libseccomp_program(section, X86_64)
    longest = {"ours": 0, "theirs": 0}
    for v in values:
        for arg in (v - 1, v, v + 1, v ^ 1 << 32):
            call = SeccompData.make(X86_64.number("read"), X86_64.audit_arch, [arg & U64_MASK])
            mine, other = interpret(ours, call), interpret(theirs, call)
            assert mine.ret == other.ret == decide(section, X86_64, call)
            longest["ours"] = max(longest["ours"], len(mine.path))
            longest["theirs"] = max(longest["theirs"], len(other.path))
    # libseccomp tests the values one after the other; the tree about log2(63) of them.
    assert longest["ours"] * 3 < longest["theirs"]


def _branches(section, arch, name):
    return plan_section(section, arch).syscalls[arch.number(name)]


def test_most_restrictive_wins_among_rules_pinning_one_value():
    """kill, errno, log and allow on the same value (and a further check): precedence holds,
    and a value whose rules' other checks fail falls through to the rules after the run."""
    def pin(action, value, *more):
        return Rule(("fd_write",), action, (ArgCheck(0, Op.EQ, value), *more))

    rules = [pin(SECCOMP_RET_ALLOW, v) for v in range(10, 30)]
    rules += [
        pin(SECCOMP_RET_KILL_PROCESS, 12),
        pin(SECCOMP_RET_ERRNO | 9, 12),
        pin(SECCOMP_RET_ERRNO | 5, 20, ArgCheck(2, Op.GT, 100)),
        pin(SECCOMP_RET_LOG, 40, ArgCheck(1, Op.EQ, 7)),
        Rule(("fd_write",), SECCOMP_RET_ERRNO | 2, (ArgCheck(2, Op.GE, 1 << 20),)),
    ]
    section = Section(EPERM, tuple(reversed(rules)))  # rule order never matters
    program = compile_section(section, GATE_ARCH)
    parts = split_runs(_branches(section, GATE_ARCH, "fd_write"))
    assert any(isinstance(p, Switch) for p in parts)
    for a0 in (9, 10, 12, 20, 29, 30, 40, 41, 12 | 1 << 32):
        for a1 in (0, 7):
            for a2 in (0, 101, 1 << 20):
                call = SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, [a0, a1, a2])
                _agree(section, GATE_ARCH, program, call)


def test_rules_of_another_shape_among_equal_actions_do_not_cut_the_run():
    """allow a0 == v for 40 values, with allow rules on other args written in between."""
    rules = []
    for v in range(0, 400, 10):
        rules.append(Rule(("fd_write",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, v),)))
        if v % 100 == 0:
            rules.append(Rule(("fd_write",), SECCOMP_RET_ALLOW, (ArgCheck(1, Op.GT, v),)))
    section = Section(EPERM, tuple(rules))
    parts = split_runs(_branches(section, GATE_ARCH, "fd_write"))
    switches = [p for p in parts if isinstance(p, Switch)]
    assert len(switches) == 1 and len(switches[0].cases) == 40
    program = compile_section(section, GATE_ARCH)
    for a0 in (0, 5, 10, 390, 391, 400):
        for a1 in (0, 1, 300, 301):
            _agree(section, GATE_ARCH, program,
                   SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, [a0, a1]))


def test_a_rule_pinning_two_values_never_matches():
    rules = [Rule(("fd_write",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, v),)) for v in range(8)]
    rules.append(Rule(("fd_write",), SECCOMP_RET_KILL_PROCESS,
                      (ArgCheck(0, Op.EQ, 3), ArgCheck(0, Op.EQ, 4))))
    section = Section(EPERM, tuple(rules))
    program = compile_section(section, GATE_ARCH)
    for a0 in range(10):
        call = SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, [a0])
        assert interpret(program, call).ret == (SECCOMP_RET_ALLOW if a0 < 8 else EPERM)


def test_fewer_values_stay_a_chain():
    rules = tuple(Rule(("fd_write",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, v * 7),))
                  for v in range(MIN_VALUES - 1))
    parts = split_runs(_branches(Section(EPERM, rules), GATE_ARCH, "fd_write"))
    assert all(isinstance(p, Branch) for p in parts)


# -- shape: instruction counts -----------------------------------------------------------------


def _pinned(values, width=64, action=SECCOMP_RET_ALLOW):
    return Section(EPERM, tuple(Rule(("fd_write",), action, (ArgCheck(0, Op.EQ, v, None, width),))
                                for v in values))


def _gate_path(program, args):
    """Instructions the gate's specialised filter executes for fd_write(args)."""
    gate = list(specialize(program, FD_WRITE, GATE_ARCH.audit_arch))
    return len(interpret(gate, SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, args)).path)


def _tests(program, args):
    """Conditional jumps on the path (``goto`` trampolines of long jumps not counted)."""
    gate = list(specialize(program, FD_WRITE, GATE_ARCH.audit_arch))
    path = interpret(gate, SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, args)).path
    return sum(1 for pc in path if bpf_class(gate[pc].code) == BPF_JMP and gate[pc].code != JA)


@pytest.mark.parametrize("width", [32, 64])
@pytest.mark.parametrize("count", [100, 1000])
def test_path_is_logarithmic_in_the_number_of_values(count, width):
    rng = random.Random(count)
    values = sorted(rng.sample(range(1 << 30), count))
    section = _pinned(values, width)
    program = compile_section(section, GATE_ARCH)
    one = compile_section(_pinned(values[:1], width), GATE_ARCH)
    probes = [v + d for v in values[::7] for d in (-1, 0, 1)] + [0, 1 << 31, 1 << 32]
    longest = max(_gate_path(program, [a]) for a in probes)
    # A chain tests every value; the tree about log2(count), plus a leaf of up to 3 and
    # the high word.
    assert max(_tests(program, [a]) for a in probes) <= math.ceil(math.log2(count)) + 3
    assert longest <= _gate_path(one, [values[0]]) + math.ceil(math.log2(count)) + 6
    assert len(program) <= 2 * count + 20
    fast = compile_program(program)
    for a in probes:
        call = SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, [a])
        _agree(section, GATE_ARCH, program, call, fast)


def test_a_thousand_values_fit_where_a_chain_would_not():
    values = random.Random(3).sample(range(1 << 40), 1000)
    assert len(compile_section(_pinned(values), GATE_ARCH)) < 4096 // 2


def test_neighbouring_values_merge_into_one_range():
    """0..99 all allowed is `0 <= a0 <= 99`: as short as one rule."""
    dense = compile_section(_pinned(range(100)), GATE_ARCH)
    one = compile_section(_pinned([5]), GATE_ARCH)
    assert len(dense) <= len(one) + 1
    for a0 in (0, 99, 100, 1 << 32, U64_MASK):
        _agree(_pinned(range(100)), GATE_ARCH, dense,
               SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, [a0]))


def test_high_words_are_compared_too():
    """Values equal in their low words, different above: each needs its own high word."""
    values = [(h << 32) | low for h in (0, 1, 7, 0xFFFFFFFF) for low in (3, 4, 9, 0xFFFFFFFF)]
    section = _pinned(values[::2])
    program = compile_section(section, GATE_ARCH)
    for v in [*values, 2 << 32 | 3, 5]:
        _agree(section, GATE_ARCH, program, SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, [v]))


def test_width_32_ignores_the_high_word():
    section = _pinned(range(0, 50, 5), width=32)
    program = compile_section(section, GATE_ARCH)
    for v in (0, 5, 6, 45, 50):
        for high in (0, 1, 0xFFFFFFFF):
            call = SeccompData.make(FD_WRITE, GATE_ARCH.audit_arch, [high << 32 | v])
            _agree(section, GATE_ARCH, program, call)


def test_header_still_checks_arch_and_x32():
    section = Section(EPERM, tuple(Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, v),))
                                   for v in range(0, 64, 3)))
    program = compile_section(section, X86_64)
    read = X86_64.number("read")
    for nr, audit in ((read, X86_64.audit_arch), (read | X32_SYSCALL_BIT, X86_64.audit_arch),
                      (read, get_arch("aarch64").audit_arch)):
        for a0 in (0, 3, 4):
            _agree(section, X86_64, program, SeccompData.make(nr, audit, [a0]))
    call = SeccompData.make(read | X32_SYSCALL_BIT, X86_64.audit_arch, [3])
    assert interpret(program, call).ret == SECCOMP_RET_KILL_PROCESS


# -- the kernel --------------------------------------------------------------------------------


def test_kernel_runs_a_switch_as_the_reference_says():
    """60 values of args[0] on an unassigned number, each with its own errno, in a child."""
    arch = native_arch()
    unassigned = 1000
    values = [*sorted(random.Random(11).sample(range(1 << 16), 60)), 1 << 32 | 9, U64_MASK]
    arch = Arch(arch.name, arch.audit_arch, {**arch.numbers, "unassigned": unassigned})
    section = Section(SECCOMP_RET_ALLOW, tuple(
        Rule(("unassigned",), SECCOMP_RET_ERRNO | (i % 90 + 1), (ArgCheck(0, Op.EQ, v),))
        for i, v in enumerate(values)))
    program = compile_section(section, arch)
    probes = [v + d for v in values[::3] for d in (-1, 0, 1)] + [1 << 32 | 9, 9, U64_MASK]
    probe_calls = [(unassigned, [a & U64_MASK]) for a in probes]
    outcomes = probe_syscalls(program, probe_calls)
    for (nr, args), outcome in zip(probe_calls, outcomes, strict=True):
        ret = decide(section, arch, SeccompData.make(nr, arch.audit_arch, args))
        if ret == SECCOMP_RET_ALLOW:
            assert outcome == SyscallOutcome("errno", errno.ENOSYS), args
        else:
            assert outcome == SyscallOutcome("errno", ret & 0xFFFF), args
