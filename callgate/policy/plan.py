"""A section resolved for one arch: per syscall number, its rules in the order that decides.

"The most restrictive matching action wins" becomes a first-match list: each
syscall's rules are sorted by :func:`~callgate.policy.reference.decision_order`
(strongest action first, then smaller data), so the first rule whose checks all
hold is the answer, and the section default is the answer when none does. The
BPF code generator and the PFC printer both read this plan; neither re-derives
the precedence.
"""

from __future__ import annotations

from dataclasses import dataclass

from callgate.arch import Arch
from callgate.bpf.seccomp_data import U32_MASK
from callgate.policy.argcmp import check_arg
from callgate.policy.model import ArgCheck, Section
from callgate.policy.program import PolicyCompileError
from callgate.policy.reference import (
    X32Rule,
    decision_order,
    mismatch_action,
    x32_rule,
)


@dataclass(frozen=True, slots=True)
class Branch:
    """Return ``action`` when every check holds (checks in a canonical order)."""

    action: int
    checks: tuple[ArgCheck, ...]


@dataclass(frozen=True, slots=True)
class SectionPlan:
    arch: Arch
    default: int
    mismatch: int
    audit_arch: int  # what the kernel reports in seccomp_data.arch
    x32: X32Rule
    # Numbers above this get ENOSYS_ACTION before any rule is looked at (runc's stub).
    enosys_above: int | None
    # syscall number -> its branches, first match wins; numbers absent here get ``default``.
    syscalls: dict[int, tuple[Branch, ...]]


def _check_action(value: int, where: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= U32_MASK:
        raise PolicyCompileError(f"{where}: action {value!r} is not a 32-bit return value")
    return value


def _check_key(check: ArgCheck) -> tuple[int, int, str, int, int]:
    return check.index, check.width, str(check.op), check.value, check.value2 or 0


def _canonical(checks: tuple[ArgCheck, ...]) -> tuple[ArgCheck, ...]:
    """Sorted and deduplicated, so equal rules compile to one shared block."""
    return tuple(sorted(set(checks), key=_check_key))


def _first_match_order(branches: list[Branch]) -> tuple[Branch, ...]:
    """Sort by decision order; drop duplicates and whatever follows an unconditional rule."""
    ordered: list[Branch] = []
    unique = dict.fromkeys(branches)  # deduplicated, in policy order, so output is stable
    for branch in sorted(unique, key=lambda b: (decision_order(b.action), len(b.checks))):
        ordered.append(branch)
        if not branch.checks:
            break
    return tuple(ordered)


def plan_section(section: Section, arch: Arch, *, mismatch: int | None = None) -> SectionPlan:
    """Resolve names to numbers on ``arch`` and order each syscall's rules; validate values."""
    default = _check_action(section.default, "default")
    chosen = mismatch_action(section) if mismatch is None else mismatch
    chosen = _check_action(chosen, "mismatch action")
    enosys_above = section.enosys_above
    if enosys_above is not None and not (
        isinstance(enosys_above, int) and 0 <= enosys_above <= U32_MASK
    ):
        raise PolicyCompileError(f"enosys_above {enosys_above!r} is not a syscall number")
    per_nr: dict[int, list[Branch]] = {}
    for i, rule in enumerate(section.rules):
        where = f"rule {i + 1} ({', '.join(rule.names) or 'no names'})"
        action = _check_action(rule.action, where)
        for check in rule.args:
            check_arg(check, where)
        branch = Branch(action, _canonical(rule.args))
        numbers = {arch.numbers[n] for n in rule.names if n in arch.numbers}
        if enosys_above is not None:
            numbers = {nr for nr in numbers if nr <= enosys_above}
        for nr in numbers:
            per_nr.setdefault(nr, []).append(branch)
    return SectionPlan(
        arch=arch,
        default=default,
        mismatch=chosen,
        audit_arch=arch.audit_arch,
        x32=x32_rule(arch),
        enosys_above=enosys_above,
        syscalls={nr: _first_match_order(b) for nr, b in sorted(per_nr.items())},
    )
