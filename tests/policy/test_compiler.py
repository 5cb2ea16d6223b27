"""The compiler's structure and limits: header, ranges, sharing, balance, long jumps, errors.

Decisions are always checked against the reference evaluator; structure is
checked by what any correct layout must show (instruction counts, path bounds).
"""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest
from hypothesis import given, settings, strategies as st

from callgate.arch import AUDIT_ARCH_CALLGATE, GATE_ARCH, Arch, get_arch
from callgate.arch.gate_numbers import APP_GATE_FIRST
from callgate.bpf import compile_program, interpret, verify
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_LOG,
)
from callgate.bpf.insn import Insn
from callgate.bpf.opcodes import BPF_ABS, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_W
from callgate.bpf.seccomp_data import OFF_ARCH, SeccompData, arg_lo
from callgate.policy.compiler import PolicyCompileError, compile_policy, compile_section
from callgate.policy.layout import _optimal_splits
from callgate.policy.model import ArgCheck, Op, Policy, Rule, Section
from callgate.policy.pfc import render_pfc
from callgate.policy.plan import plan_section
from callgate.policy.reference import decide

X86_64 = get_arch("x86_64")
EPERM = SECCOMP_RET_ERRNO | 1
HEADER = 4  # load arch, check it, load nr, x32 check


def assert_matches_reference(section, arch, program, args_list=((0,),)):
    fast = compile_program(program)
    for nr in [*arch.numbers.values(), 0x40000000, 0xFFFFFFFF, 999]:
        for args in args_list:
            call = SeccompData.make(nr, arch.audit_arch, list(args))
            assert fast(nr, call.arch, 0, *call.args) == decide(section, arch, call), (nr, args)


def paths(program, arch):
    return [
        len(interpret(program, SeccompData.make(nr, arch.audit_arch)).path)
        for nr in arch.numbers.values()
    ]


def test_header_checks_the_arch_first():
    program = compile_section(Section(SECCOMP_RET_ALLOW), X86_64)
    verify(program)
    assert program[0] == Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, OFF_ARCH)
    assert program[1].code == BPF_JMP | BPF_JEQ | BPF_K and program[1].k == X86_64.audit_arch


def test_mismatch_action_argument_overrides_section():
    section = Section(SECCOMP_RET_ALLOW, mismatch_action=EPERM)
    other = SeccompData.make(0, get_arch("aarch64").audit_arch)
    assert interpret(compile_section(section, X86_64), other).ret == EPERM
    program = compile_section(section, X86_64, mismatch_action=SECCOMP_RET_LOG)
    assert interpret(program, other).ret == SECCOMP_RET_LOG


def test_allowing_every_syscall_is_a_handful_of_ranges():
    section = Section(EPERM, (Rule(tuple(X86_64.numbers), SECCOMP_RET_ALLOW),))
    program = compile_section(section, X86_64)
    assert len(program) <= HEADER + 12
    assert_matches_reference(section, X86_64, program)


def test_identical_blocks_are_shared():
    """Two distant syscalls with the same arg rule share one copy of the check."""
    check = (ArgCheck(0, Op.EQ, 7),)
    section = Section(
        EPERM,
        (Rule(("read", "getppid", "uname"), SECCOMP_RET_ALLOW, check),),
    )
    program = compile_section(section, X86_64)
    low_word_loads = [i for i in program if i == Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, arg_lo(0))]
    assert len(low_word_loads) == 1
    assert_matches_reference(section, X86_64, program, [(7,), (8,), (7 | 1 << 32,)])


def _loads(program, offset):
    return [pc for pc, i in enumerate(program) if i == Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset)]


def test_a_word_a_already_holds_is_not_loaded_again():
    """A range on one fd, then (as `callgate learn` writes them) one rule per pinned fd."""
    section = Section(EPERM, (
        Rule(("write",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.GE, 1, width=32),
                                             ArgCheck(0, Op.LE, 2, width=32))),
        Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, 0, width=32),)),
        Rule(("read",), SECCOMP_RET_LOG, (ArgCheck(0, Op.EQ, 5, width=32),)),
        Rule(("read",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(0, Op.EQ, 9, width=32),)),
    ))
    program = compile_section(section, X86_64)
    # One load of args[0] per syscall: every later check finds A still holding it.
    assert len(_loads(program, arg_lo(0))) == 2
    calls = [(a,) for a in (0, 1, 2, 3, 5, 9, 10, 1 << 32, 0xFFFFFFFF)]
    assert_matches_reference(section, X86_64, program, calls)


def test_a_load_is_kept_where_one_path_into_it_holds_another_word():
    """read's only check is write's second one, so the block is shared; write reaches it
    holding args[0], read holding nr: the load must stay."""
    section = Section(EPERM, (
        Rule(("write",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.GE, 1, width=32),
                                             ArgCheck(0, Op.LE, 5, width=32))),
        Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.LE, 5, width=32),)),
    ))
    program = compile_section(section, X86_64)
    assert len(_loads(program, arg_lo(0))) == 2  # write's first check, the shared block
    calls = [(a,) for a in (0, 1, 3, 5, 6, 1 << 32)]
    assert_matches_reference(section, X86_64, program, calls)


def test_tree_is_balanced_over_distinct_syscalls():
    """Every syscall a different action: the path is logarithmic in the number of ranges."""
    rules = tuple(
        Rule((name,), SECCOMP_RET_ERRNO | (nr % 4000 + 1)) for name, nr in X86_64.numbers.items()
    )
    section = Section(SECCOMP_RET_ALLOW, rules)
    program = compile_section(section, X86_64)
    ranges = 2 * len(X86_64.numbers) + 1  # at most: each number and each gap after it
    assert max(paths(program, X86_64)) <= HEADER + math.ceil(math.log2(ranges)) + 2
    assert_matches_reference(section, X86_64, program)


def test_long_jumps_go_through_trampolines():
    """A program far over 256 instructions: far targets are reached exactly."""
    names = sorted(X86_64.numbers, key=X86_64.numbers.__getitem__)[:150]
    rules = tuple(
        Rule((name,), SECCOMP_RET_ERRNO | (i + 2), (ArgCheck(0, Op.EQ, i + (i << 32)),))
        for i, name in enumerate(names)
    )
    section = Section(SECCOMP_RET_ALLOW, rules)
    program = compile_section(section, X86_64)
    assert len(program) > 600
    assert any(insn.code == BPF_JMP | BPF_JA for insn in program)
    args = [(i + (i << 32),) for i in range(0, 150, 7)] + [(0,), (1,), (1 << 32,)]
    assert_matches_reference(section, X86_64, program, args)


def test_over_4096_instructions_is_a_clear_error():
    rules = tuple(
        Rule((name,), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, nr * 8 + k + (k << 40)),))
        for name, nr in X86_64.numbers.items()
        for k in range(4)
    )
    with pytest.raises(PolicyCompileError, match=r"needs \d{4,} instructions.*4096") as info:
        compile_section(Section(EPERM, rules), X86_64)
    assert int(str(info.value).split("needs ")[1].split()[0]) > 4096


@pytest.mark.parametrize(
    "check,message",
    [
        (ArgCheck(6, Op.EQ, 0), "arg index 6"),
        (ArgCheck(0, Op.EQ, 2**64), "does not fit"),
        (ArgCheck(0, Op.EQ, -1), "does not fit"),
        (ArgCheck(0, Op.LT, 2**32, width=32), "does not fit an unsigned 32-bit"),
        (ArgCheck(0, Op.EQ, 1, width=16), "width 16"),
        (ArgCheck(0, Op.MASKED_EQ, 0xFF), "needs value2"),
        (ArgCheck(0, "approx", 1), "op 'approx'"),  # type: ignore[arg-type]
    ],
)
def test_invalid_checks_are_named(check, message):
    section = Section(EPERM, (Rule(("read",), SECCOMP_RET_ALLOW, (check,)),))
    with pytest.raises(PolicyCompileError, match=message) as info:
        compile_section(section, X86_64)
    assert "rule 1 (read)" in str(info.value)


def test_invalid_action_is_named():
    with pytest.raises(PolicyCompileError, match="default"):
        compile_section(Section(2**32), X86_64)


def test_compile_policy_checks_layer_against_arch():
    policy = Policy(kernel=Section(SECCOMP_RET_ALLOW), source="p.toml")
    assert compile_policy(policy, "kernel", X86_64)
    with pytest.raises(PolicyCompileError, match="gate arch"):
        compile_policy(policy, "gates", X86_64)
    with pytest.raises(PolicyCompileError, match=r"p.toml has no \[gates\] section"):
        compile_policy(policy, "gates", GATE_ARCH)
    with pytest.raises(PolicyCompileError, match="kernel arch"):
        compile_policy(policy, "kernel", GATE_ARCH)


def test_any_arch_table_compiles_including_app_gates():
    numbers = dict(GATE_ARCH.numbers) | {"app_log": APP_GATE_FIRST, "app_fetch": APP_GATE_FIRST + 1}
    arch = Arch("callgate", AUDIT_ARCH_CALLGATE, MappingProxyType(numbers))
    section = Section(
        SECCOMP_RET_KILL_PROCESS,
        (
            Rule(("app_log", "fd_write"), SECCOMP_RET_ALLOW),
            Rule(("app_fetch",), EPERM, (ArgCheck(1, Op.GT, 4096, width=32),)),
        ),
    )
    program = compile_section(section, arch)
    assert_matches_reference(section, arch, program, [(0, 0), (0, 4097), (0, 4096 | 1 << 32)])
    nr = APP_GATE_FIRST + 1
    assert interpret(program, SeccompData.make(nr, AUDIT_ARCH_CALLGATE, [0, 5000])).ret == EPERM


def test_output_is_deterministic():
    section = Section(
        EPERM,
        (
            Rule(("read", "write"), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.NE, 3),)),
            Rule(("read",), SECCOMP_RET_LOG, (ArgCheck(1, Op.MASKED_EQ, 0xF0, 0x10),)),
        ),
    )
    assert compile_section(section, X86_64) == compile_section(section, X86_64)


def test_pfc_reads_as_the_decision_order():
    section = Section(
        EPERM,
        (
            Rule(("write",), SECCOMP_RET_ALLOW),
            Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.LT, 3, width=32),)),
            Rule(("read",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(2, Op.MASKED_EQ, 0xF0, 0x10),)),
        ),
    )
    assert render_pfc(plan_section(section, X86_64)) == (
        "#\n# pseudo filter code start\n#\n"
        "# filter for arch x86_64 (3221225534)\n"
        "if ($arch == 3221225534)\n"
        "  # x32 syscalls are refused; -1 (4294967295) is a tracer's 'skip'\n"
        "  if ($syscall >= 1073741824 && $syscall != 4294967295)\n"
        "    action KILL_PROCESS;\n"
        "  # syscall read (0)\n"
        "  if ($syscall == 0)\n"
        "    if (($a2 & 0xf0) == 16)\n"
        "      action KILL_PROCESS;\n"
        "    if ($a0.lo32 < 3)\n"
        "      action ALLOW;\n"
        "  # syscall write (1)\n"
        "  if ($syscall == 1)\n"
        "    action ALLOW;\n"
        "  # default action\n"
        "  action ERRNO(1);\n"
        "# invalid architecture action\n"
        "action KILL_PROCESS;\n"
        "#\n# pseudo filter code end\n#\n"
    )


def _tree_cost(prefix, splits, lo, hi):
    if hi - lo == 1:
        return 0
    k = splits[lo, hi]
    inner = _tree_cost(prefix, splits, lo, k) + _tree_cost(prefix, splits, k, hi)
    return inner + prefix[hi] - prefix[lo]


def _brute_force_cost(prefix):
    n = len(prefix) - 1
    cost = {(i, i + 1): 0 for i in range(n)}
    for length in range(2, n + 1):
        for lo in range(n - length + 1):
            hi = lo + length
            best = min(cost[lo, k] + cost[k, hi] for k in range(lo + 1, hi))
            cost[lo, hi] = best + prefix[hi] - prefix[lo]
    return cost[0, n]


@given(st.lists(st.integers(1, 50), min_size=1, max_size=14))
@settings(max_examples=200, deadline=None)
def test_dispatch_tree_is_optimal(weights):
    """Knuth's O(n^2) table gives the least weighted depth the cubic search finds."""
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    splits = _optimal_splits(prefix)
    assert _tree_cost(prefix, splits, 0, len(weights)) == _brute_force_cost(prefix)
