"""The reference evaluator against hand-worked examples of the policy semantics.

Each expectation is derived from the spec (issue 3, design.md, the kernel), not
from running the code: arch check, x32, precedence, AND/OR, widths, ops, names.
"""

from __future__ import annotations

import itertools

import pytest

from callgate.arch import GATE_ARCH, get_arch
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
)
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy.model import ArgCheck, Op, Rule, Section
from callgate.policy.reference import decide

X86_64 = get_arch("x86_64")
AARCH64 = get_arch("aarch64")
READ = X86_64.number("read")
EPERM = SECCOMP_RET_ERRNO | 1
U64 = 2**64 - 1


def call(nr: int, *args: int, arch=X86_64) -> SeccompData:
    return SeccompData.make(nr, arch.audit_arch, list(args))


def one_rule(*checks: ArgCheck, action=SECCOMP_RET_ALLOW, default=EPERM) -> Section:
    return Section(default, (Rule(("read",), action, checks),))


def test_other_arch_gets_kill_process_by_default():
    section = Section(SECCOMP_RET_ALLOW)
    assert decide(section, X86_64, call(READ, arch=AARCH64)) == SECCOMP_RET_KILL_PROCESS
    assert decide(section, X86_64, call(READ)) == SECCOMP_RET_ALLOW


def test_mismatch_action_is_configurable():
    section = Section(SECCOMP_RET_ALLOW, mismatch_action=SECCOMP_RET_ERRNO | 38)
    assert decide(section, X86_64, call(READ, arch=AARCH64)) == SECCOMP_RET_ERRNO | 38


@pytest.mark.parametrize("nr", [0x40000000, 0x40000001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE])
def test_x32_numbers_refused_on_x86_64(nr):
    section = Section(SECCOMP_RET_ALLOW, (Rule(("read",), SECCOMP_RET_ALLOW),))
    assert decide(section, X86_64, call(nr)) == SECCOMP_RET_KILL_PROCESS
    # Other arches have no x32: the number is just unknown, so the default applies.
    assert decide(section, AARCH64, call(nr, arch=AARCH64)) == SECCOMP_RET_ALLOW


def test_x32_filter_expects_x86_64_arch_and_the_x32_bit():
    """The kernel reports x32 calls as AUDIT_ARCH_X86_64 with bit 30 set in nr."""
    x32 = get_arch("x32")
    section = Section(EPERM, (Rule(("read",), SECCOMP_RET_ALLOW),))
    x32_read = x32.number("read")
    assert x32_read == 0x40000000
    assert decide(section, x32, call(x32_read)) == SECCOMP_RET_ALLOW
    assert decide(section, x32, call(x32_read + 1)) == EPERM
    assert decide(section, x32, call(READ)) == SECCOMP_RET_KILL_PROCESS  # an x86_64 call
    # libseccomp's API token for x32 is no arch a kernel reports: the mismatch action.
    token = SeccompData.make(x32_read, 0x4000003E)
    assert decide(section, x32, token) == SECCOMP_RET_KILL_PROCESS


def test_minus_one_is_not_x32():
    """nr -1 is a tracer's 'skip this syscall'; like libseccomp, it reaches the default."""
    assert decide(Section(EPERM), X86_64, call(-1)) == EPERM


STRENGTH = [
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_ERRNO | 5,
    SECCOMP_RET_USER_NOTIF,
    SECCOMP_RET_TRACE | 3,
    SECCOMP_RET_LOG,
    SECCOMP_RET_ALLOW,
]


@pytest.mark.parametrize("stronger,weaker", list(itertools.combinations(STRENGTH, 2)))
def test_most_restrictive_matching_action_wins_in_any_order(stronger, weaker):
    for actions in ((stronger, weaker), (weaker, stronger)):
        rules = tuple(Rule(("read",), a) for a in actions)
        assert decide(Section(SECCOMP_RET_ALLOW, rules), X86_64, call(READ)) == stronger


def test_equal_actions_smaller_data_wins():
    for order in ((13, 1), (1, 13)):
        rules = tuple(Rule(("read",), SECCOMP_RET_ERRNO | e) for e in order)
        assert decide(Section(SECCOMP_RET_ALLOW, rules), X86_64, call(READ)) == EPERM


def test_non_matching_stronger_rule_does_not_count():
    section = Section(
        SECCOMP_RET_LOG,
        (
            Rule(("read",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(0, Op.EQ, 666),)),
            Rule(("read",), SECCOMP_RET_ALLOW),
        ),
    )
    assert decide(section, X86_64, call(READ, 1)) == SECCOMP_RET_ALLOW
    assert decide(section, X86_64, call(READ, 666)) == SECCOMP_RET_KILL_PROCESS


def test_args_of_a_rule_are_anded():
    section = one_rule(ArgCheck(0, Op.EQ, 1), ArgCheck(1, Op.EQ, 2))
    assert decide(section, X86_64, call(READ, 1, 2)) == SECCOMP_RET_ALLOW
    assert decide(section, X86_64, call(READ, 1, 3)) == EPERM
    assert decide(section, X86_64, call(READ, 0, 2)) == EPERM


def test_rules_are_ored():
    section = Section(
        EPERM,
        (
            Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, 1),)),
            Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(1, Op.EQ, 2),)),
        ),
    )
    assert decide(section, X86_64, call(READ, 1, 0)) == SECCOMP_RET_ALLOW
    assert decide(section, X86_64, call(READ, 0, 2)) == SECCOMP_RET_ALLOW
    assert decide(section, X86_64, call(READ, 0, 0)) == EPERM


@pytest.mark.parametrize(
    "op,value,arg,holds",
    [
        (Op.EQ, 5, 5, True),
        (Op.EQ, 5, 5 | 1 << 32, False),  # the high word counts at width 64
        (Op.NE, 5, 5 | 1 << 32, True),
        (Op.GT, 5, U64, True),  # unsigned: -1 is the largest value
        (Op.GT, 1 << 32, (1 << 32) + 1, True),
        (Op.GT, 1 << 32, 0xFFFFFFFF, False),  # low word larger, high word smaller
        (Op.GE, 1 << 32, 1 << 32, True),
        (Op.LT, 1 << 32, 0xFFFFFFFF, True),
        (Op.LT, 0, 0, False),
        (Op.LE, U64, U64, True),
        (Op.LE, 0xFFFFFFFF, 1 << 32, False),
    ],
)
def test_64_bit_ops_are_unsigned_and_exact(op, value, arg, holds):
    section = one_rule(ArgCheck(2, op, value))
    expected = SECCOMP_RET_ALLOW if holds else EPERM
    assert decide(section, X86_64, call(READ, 0, 0, arg)) == expected


def test_width_32_compares_the_low_word_only():
    """A 32-bit int -1 reaches the filter as 0xffffffff or sign-extended: both match."""
    section = one_rule(ArgCheck(0, Op.EQ, 0xFFFFFFFF, width=32))
    for arg in (0xFFFFFFFF, U64, 0x12345678FFFFFFFF):
        assert decide(section, X86_64, call(READ, arg)) == SECCOMP_RET_ALLOW
    wide = one_rule(ArgCheck(0, Op.EQ, 0xFFFFFFFF))
    assert decide(wide, X86_64, call(READ, U64)) == EPERM
    lt = one_rule(ArgCheck(0, Op.LT, 10, width=32))
    assert decide(lt, X86_64, call(READ, 0xFFFFFFFF00000003)) == SECCOMP_RET_ALLOW


def test_masked_eq_is_arg_and_mask_equals_datum():
    section = one_rule(ArgCheck(0, Op.MASKED_EQ, 0xF0, 0x10))
    assert decide(section, X86_64, call(READ, 0x1F)) == SECCOMP_RET_ALLOW
    assert decide(section, X86_64, call(READ, 0x20)) == EPERM
    never = one_rule(ArgCheck(0, Op.MASKED_EQ, 0xFF, 0x134))  # datum outside the mask
    assert decide(never, X86_64, call(READ, 0x134)) == EPERM


def test_names_the_arch_lacks_are_skipped():
    section = Section(EPERM, (Rule(("socketcall", "read", "nonexistent"), SECCOMP_RET_ALLOW),))
    assert decide(section, X86_64, call(READ)) == SECCOMP_RET_ALLOW
    assert decide(section, X86_64, call(X86_64.number("write"))) == EPERM


def test_enosys_above_overrides_rules():
    getppid = X86_64.number("getppid")
    section = Section(
        EPERM, (Rule(("getppid", "read"), SECCOMP_RET_ALLOW),), enosys_above=getppid - 1
    )
    assert decide(section, X86_64, call(getppid)) == SECCOMP_RET_ERRNO | 38
    assert decide(section, X86_64, call(READ)) == SECCOMP_RET_ALLOW
    assert decide(section, X86_64, call(-1)) == SECCOMP_RET_ERRNO | 38
    assert decide(section, X86_64, call(0x40000000)) == SECCOMP_RET_KILL_PROCESS


def test_gate_arch_uses_gate_names():
    section = Section(EPERM, (Rule(("fd_write",), SECCOMP_RET_ALLOW),))
    fd_write = GATE_ARCH.number("fd_write")
    assert decide(section, GATE_ARCH, call(fd_write, arch=GATE_ARCH)) == SECCOMP_RET_ALLOW
    assert decide(section, GATE_ARCH, call(fd_write)) == SECCOMP_RET_KILL_PROCESS
    # No x32 rule on the gate arch: a gate number with bit 30 is just unknown.
    assert decide(section, GATE_ARCH, call(0x40000000, arch=GATE_ARCH)) == EPERM
