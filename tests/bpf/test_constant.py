"""Constant-action analysis: sound on generated programs, and not trivially empty.

Soundness: whenever the analysis claims ``nr -> v``, the reference interpreter
returns v for that nr on every ip/args tried, including the program's own
constants (so equality branches are taken) and edge values. Precision: hand-built
programs where the constant results are known by reading them, and where
claiming one would be wrong (two concrete calls, worked out by hand, differ).
"""

from __future__ import annotations

import pytest
from bpf_strategies import AUDIT_ARCH_X86_64, U64_EDGES, default_constants, u64s, valid_programs
from hypothesis import HealthCheck, given, settings, strategies as st

from callgate.arch import AUDIT_ARCH_CALLGATE
from callgate.bpf import actions, constant_actions, interpret, opcodes as op
from callgate.bpf.constant import abstract_states
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import U32_MASK, SeccompData

NRS = (*range(1000, 1011), 0, 0xFFFFFFFF)
ARCHES = (AUDIT_ARCH_X86_64, AUDIT_ARCH_CALLGATE)
ALLOW = actions.SECCOMP_RET_ALLOW
ERRNO_1 = actions.SECCOMP_RET_ERRNO | 1
TRAP_5 = actions.SECCOMP_RET_TRAP | 5
KILL_PROCESS = actions.SECCOMP_RET_KILL_PROCESS


def ld(offset: int) -> Insn:
    return Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, k=offset)


def jeq(k: int, jt: int, jf: int) -> Insn:
    return Insn(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, jt, jf, k)


def ret(k: int) -> Insn:
    return Insn(op.BPF_RET | op.BPF_K, k=k)


RET_A = Insn(op.BPF_RET | op.BPF_A)
NR, ARCH, IP_LO, ARG0, ARG1 = 0, 4, 8, 16, 24


def _run(program: list[Insn], nr: int, arch: int, ip: int = 0, args=(0,) * 6) -> int:
    return interpret(program, SeccompData(nr, arch, ip, tuple(args))).ret


# A small pool of immediates shared by programs and probe args, so that equality
# branches on unknown values are taken both ways and derived values recur.
POOL = (0, 1, 2, 5, 7, 0xFF, 0x100, 1000, 1001, 0x80000000, 0xFFFFFFFF)


@st.composite
def _programs_and_probes(draw: st.DrawFn):
    arch = draw(st.sampled_from(ARCHES))
    constants = st.sampled_from(POOL) | default_constants() | st.sampled_from(ARCHES)
    # Mostly nr and arch loads, so many results are constant, with args and ip mixed in.
    offsets = st.sampled_from((0, 4)) | st.sampled_from(range(0, 64, 4))
    # Few distinct results, so paths through unknown branches often agree and are claimed.
    returns = st.sampled_from((ALLOW, ERRNO_1, TRAP_5))
    program = draw(
        valid_programs(max_insns=24, constants=constants, returns=returns, load_offsets=offsets)
    )
    # Probe words from the pool and the program's own immediates hit its equality branches.
    words = st.sampled_from(POOL) | st.sampled_from(sorted({i.k for i in program}))
    word_pairs = st.builds(lambda hi, lo: hi << 32 | lo, words, words)
    value = word_pairs | u64s() | st.sampled_from(U64_EDGES)
    probes = draw(st.lists(st.tuples(value, st.tuples(*[value] * 6)), min_size=4, max_size=12))
    return program, arch, probes


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs_and_probes())
def test_claimed_constants_hold_for_every_ip_and_args(case):
    program, arch, probes = case
    table = constant_actions(program, arch, NRS)
    assert set(table) <= set(NRS)
    for nr, value in table.items():
        for ip, args in probes:
            assert _run(program, nr, arch, ip, args) == value, (nr, ip, args)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs_and_probes(), st.sampled_from(NRS))
def test_every_executed_instruction_is_reachable_in_the_analysis(case, nr):
    """A finer soundness check than the final claims: the analysis never prunes a branch
    a real run takes, and a known A at a RET A is the value really returned."""
    program, arch, probes = case
    states = abstract_states(program, arch, nr)
    for ip, args in probes:
        execution = interpret(program, SeccompData(nr, arch, ip, args))
        assert all(states[pc] is not None for pc in execution.path)
        last = execution.path[-1]
        known_a = states[last][0]
        if program[last] == RET_A and known_a is not None:
            assert known_a == execution.ret


# A libseccomp-style filter: arch check, then per-number decisions, one of them on args[0].
DISPATCH = [
    ld(ARCH),
    jeq(AUDIT_ARCH_X86_64, 0, 9),  # other arch -> 11: KILL_PROCESS
    ld(NR),
    jeq(1000, 6, 0),  # -> 10: ALLOW
    jeq(1001, 0, 3),  # -> 5 / 8
    ld(ARG0),
    jeq(7, 3, 0),  # args[0] == 7 -> 10: ALLOW
    ret(ERRNO_1),
    jeq(1002, 0, 1),  # -> 9 / 10
    ret(TRAP_5),
    ret(ALLOW),
    ret(KILL_PROCESS),
]


def test_dispatch_filter_constants():
    table = constant_actions(DISPATCH, AUDIT_ARCH_X86_64, [0, 1000, 1001, 1002, 1003])
    assert table == {0: ALLOW, 1000: ALLOW, 1002: TRAP_5, 1003: ALLOW}
    # 1001 is left out because its result depends on args[0]:
    assert _run(DISPATCH, 1001, AUDIT_ARCH_X86_64, args=(7, 0, 0, 0, 0, 0)) == ALLOW
    assert _run(DISPATCH, 1001, AUDIT_ARCH_X86_64) == ERRNO_1


def test_wrong_arch_is_constantly_killed():
    table = constant_actions(DISPATCH, AUDIT_ARCH_CALLGATE, range(998, 1004))
    assert table == dict.fromkeys(range(998, 1004), KILL_PROCESS)


PRECISE = [
    (
        "equality branch: RET A where A is known to equal 7, else RET 7",
        [ld(ARG0), jeq(7, 0, 1), RET_A, ret(7)],
        {1000: 7, 1001: 7},
    ),
    (
        "unsigned comparisons of nr, equal values included",
        [ld(NR), Insn(op.BPF_JMP | op.BPF_JGE | op.BPF_K, 0, 3, 1001),
         Insn(op.BPF_JMP | op.BPF_JGT | op.BPF_K, 0, 1, 1001), ret(TRAP_5), ret(ERRNO_1),
         ret(ALLOW)],
        {1000: ALLOW, 1001: ERRNO_1, 1002: TRAP_5},
    ),
    (
        "RET A computed from nr alone",
        [ld(NR), Insn(op.BPF_ALU | op.BPF_OR | op.BPF_K, k=ALLOW), RET_A],
        {1000: ALLOW | 1000, 1001: ALLOW | 1001},
    ),
    (
        "nr kept in scratch memory across an args load",
        [ld(NR), Insn(op.BPF_ST, k=3), ld(ARG1), Insn(op.BPF_LD | op.BPF_MEM, k=3), RET_A],
        {1000: 1000, 1001: 1001},
    ),
    (
        "division by a known X",
        [Insn(op.BPF_LDX | op.BPF_IMM, k=2), ld(NR), Insn(op.BPF_ALU | op.BPF_DIV | op.BPF_X),
         RET_A],
        {1000: 500, 1001: 500},
    ),
    (
        "an unknown value masked to zero",
        [ld(ARG0), Insn(op.BPF_ALU | op.BPF_AND | op.BPF_K, k=0),
         Insn(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 1, 0), ret(ALLOW), ret(ERRNO_1)],
        {1000: ALLOW, 1001: ALLOW},
    ),
    (
        "args checked only on the path of another number",
        [ld(NR), jeq(1000, 0, 2), ld(ARG0), RET_A, ret(ALLOW)],
        {1001: ALLOW},
    ),
    (
        "an unknown value masked, then compared",
        [ld(ARG0), Insn(op.BPF_ALU | op.BPF_AND | op.BPF_K, k=0xFF),
         Insn(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 1, 0), ret(ALLOW), ret(ERRNO_1)],
        {},
    ),
    ("RET A of an argument", [ld(ARG0), RET_A], {}),
    (
        "a decision on the instruction pointer",
        [ld(IP_LO), Insn(op.BPF_JMP | op.BPF_JGT | op.BPF_K, 0, 1, 0), ret(ALLOW), ret(ERRNO_1)],
        {},
    ),
    (
        "division by an argument that may be 0 (the filter then returns 0)",
        [ld(ARG0), Insn(op.BPF_MISC | op.BPF_TAX), Insn(op.BPF_LD | op.BPF_IMM, k=ALLOW),
         Insn(op.BPF_ALU | op.BPF_DIV | op.BPF_X), ret(ALLOW)],
        {},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "program", "expected"), PRECISE, ids=[c[0] for c in PRECISE])
def test_hand_built_programs(name, program, expected):
    nrs = [1000, 1001, 1002] if 1002 in expected else [1000, 1001]
    assert constant_actions(program, AUDIT_ARCH_X86_64, nrs) == expected


@pytest.mark.parametrize(
    ("program", "first", "second"),
    [
        (PRECISE[-4][1], (0, (0x100,) * 6), (0, (0x101,) * 6)),
        (PRECISE[-3][1], (0, (5, 0, 0, 0, 0, 0)), (0, (6, 0, 0, 0, 0, 0))),
        (PRECISE[-2][1], (0, (0,) * 6), (1, (0,) * 6)),
        (PRECISE[-1][1], (0, (0,) * 6), (0, (1, 0, 0, 0, 0, 0))),
    ],
)
def test_left_out_numbers_really_vary(program, first, second):
    """The non-constant cases above: two concrete calls with different results."""
    results = {_run(program, 1000, AUDIT_ARCH_X86_64, ip, args) for ip, args in (first, second)}
    assert len(results) == 2


def test_numbers_are_keyed_as_u32():
    program = [ld(NR), RET_A]
    assert constant_actions(program, AUDIT_ARCH_X86_64, [-1]) == {U32_MASK: U32_MASK}


def _kernel_cache_allows(program: list[Insn], arch: int, nr: int) -> bool:
    """``seccomp_is_filter_const_allow`` (kernel/seccomp.c): the kernel's own ALLOW cache test.

    It follows one path with A only, knows nr, arch and ``A &= k``, and gives up on
    anything else.
    """
    a, pc = 0, 0
    while pc < len(program):
        insn = program[pc]
        code, k = insn.code, insn.k
        if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
            if k not in (NR, ARCH):
                return False
            a = nr & U32_MASK if k == NR else arch
        elif code == op.BPF_RET | op.BPF_K:
            return k == ALLOW
        elif code == op.BPF_JMP | op.BPF_JA:
            pc += k
        elif code in {op.BPF_JMP | cond | op.BPF_K for cond in JUMPS}:
            pc += insn.jt if JUMPS[op.bpf_op(code)](a, k) else insn.jf
        elif code == op.BPF_ALU | op.BPF_AND | op.BPF_K:
            a &= k
        else:
            return False
        pc += 1
    return False


JUMPS = {
    op.BPF_JEQ: lambda a, k: a == k,
    op.BPF_JGE: lambda a, k: a >= k,
    op.BPF_JGT: lambda a, k: a > k,
    op.BPF_JSET: lambda a, k: a & k != 0,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ARCHES), st.data())
def test_at_least_as_precise_as_the_kernel_cache(arch, data):
    """Every number the kernel's cache would mark always-ALLOW, we find constant ALLOW too."""
    nr_or_arch = st.sampled_from((NR, ARCH)) | st.sampled_from(range(0, 64, 4))
    program = data.draw(
        valid_programs(
            max_insns=16,
            constants=st.sampled_from(NRS) | st.sampled_from(ARCHES) | st.sampled_from(POOL),
            returns=st.sampled_from((ALLOW, ERRNO_1)),
            load_offsets=nr_or_arch,
        )
    )
    table = constant_actions(program, arch, NRS)
    for nr in NRS:
        if _kernel_cache_allows(program, arch, nr):
            assert table.get(nr) == ALLOW


def test_kernel_cache_emulation_is_not_vacuous():
    assert _kernel_cache_allows(DISPATCH, AUDIT_ARCH_X86_64, 1000)
    assert not _kernel_cache_allows(DISPATCH, AUDIT_ARCH_X86_64, 1001)  # loads args[0]
    assert not _kernel_cache_allows(DISPATCH, AUDIT_ARCH_X86_64, 1002)  # TRAP, not ALLOW
    assert not _kernel_cache_allows(DISPATCH, AUDIT_ARCH_CALLGATE, 1000)  # KILL_PROCESS
