"""The meaning of a policy section, evaluated directly on the model: no BPF involved.

This is the specification the compiler is tested against, so it is written to be
read, not to be fast:

1. a call whose ``arch`` is not the filter's gets the mismatch action (default
   ``KILL_PROCESS``);
2. on x86_64, an x32 call (``nr >= 0x40000000``) gets the mismatch action too —
   except ``nr == -1``, which is not a syscall but what a tracer writes to skip
   one; the kernel answers it ``ENOSYS``, so it falls through to the rules
   (libseccomp does the same). A filter for x32 expects x86_64's arch value and
   gives the mismatch action to calls *without* the x32 bit;
3. if the section has ``enosys_above`` (runc's stub for OCI profiles), a number
   above it (unsigned, so ``-1`` too) gets ``ERRNO(ENOSYS)`` whatever the rules say;
4. a rule matches when the call's number is one of its names on this arch (names
   the arch lacks are skipped) and every arg check holds (AND);
5. of all matching rules (OR) the most restrictive action wins, in kernel
   precedence; between equal actions with different data (``ERRNO(1)`` and
   ``ERRNO(13)``) the smaller data wins, so rule order never matters;
6. no matching rule: the section's default.
"""

from __future__ import annotations

import enum
import errno

from callgate.arch import X32_SYSCALL_BIT, Arch, get_arch
from callgate.bpf.actions import (
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    data_of,
    precedence_key,
)
from callgate.bpf.seccomp_data import U32_MASK, SeccompData
from callgate.policy.model import ArgCheck, Op, Section

# ``nr`` as a tracer's "skip this syscall": the int -1.
SKIPPED_NR = U32_MASK

# What ``enosys_above`` answers: ENOSYS is 38 on every arch callgate has a table for.
ENOSYS_ACTION = SECCOMP_RET_ERRNO | errno.ENOSYS


def decision_order(ret: int) -> tuple[int, int]:
    """Sort key over return values: the first in this order is the one that wins."""
    return precedence_key(ret), data_of(ret)


def mismatch_action(section: Section) -> int:
    return SECCOMP_RET_KILL_PROCESS if section.mismatch_action is None else section.mismatch_action


class X32Rule(enum.Enum):
    """How a filter treats the x32 bit in ``nr`` on the x86-64 kernel ABI."""

    NONE = "none"  # not an x86-64 kernel arch
    REJECT = "reject"  # x86_64: x32 calls get the mismatch action (nr -1 excepted)
    REQUIRE = "require"  # x32: calls without the bit are x86_64 calls, the mismatch action


def x32_rule(arch: Arch) -> X32Rule:
    if arch.is_x32:
        return X32Rule.REQUIRE
    if arch.audit_arch == get_arch("x86_64").audit_arch:
        return X32Rule.REJECT
    return X32Rule.NONE


def is_x32_call(nr: int) -> bool:
    return X32_SYSCALL_BIT <= nr & U32_MASK != SKIPPED_NR


def wrong_abi(arch: Arch, nr: int) -> bool:
    """Whether ``nr`` was made through the other x86-64 ABI (x32 on x86_64, or back)."""
    rule = x32_rule(arch)
    if rule is X32Rule.REJECT:
        return is_x32_call(nr)
    return rule is X32Rule.REQUIRE and nr < X32_SYSCALL_BIT


def holds(check: ArgCheck, args: tuple[int, ...]) -> bool:
    """Whether ``check`` holds, comparing unsigned ``check.width``-bit integers."""
    arg = args[check.index] & ((1 << check.width) - 1)
    value = check.value
    match Op(check.op):
        case Op.EQ:
            return arg == value
        case Op.NE:
            return arg != value
        case Op.LT:
            return arg < value
        case Op.LE:
            return arg <= value
        case Op.GT:
            return arg > value
        case Op.GE:
            return arg >= value
        case Op.MASKED_EQ:
            return arg & value == check.value2


def decide(section: Section, arch: Arch, data: SeccompData) -> int:
    """The return value a filter for ``section`` on ``arch`` must give for ``data``."""
    nr = data.nr & U32_MASK
    if data.arch != arch.audit_arch or wrong_abi(arch, nr):
        return mismatch_action(section)
    if section.enosys_above is not None and nr > section.enosys_above:
        return ENOSYS_ACTION
    matching = [
        rule.action
        for rule in section.rules
        if any(arch.numbers.get(name) == nr for name in rule.names)
        and all(holds(check, data.args) for check in rule.args)
    ]
    return min(matching, key=decision_order) if matching else section.default
