"""Pseudo filter code: the compiled decision procedure as text people can read and review.

In the spirit of libseccomp's ``seccomp_export_pfc``: the checks in the order the
filter makes them, with 64-bit comparisons written whole (``$a0 > 0x100000005``)
rather than split into words. It is printed from the same plan the BPF code is
generated from (:mod:`callgate.policy.plan`), so the order shown — strongest
action first within each syscall, first match wins — is the order the filter
really uses. Syscalls with identical rules share one block. A run of rules pinning one
argument to many values, which the filter searches as a tree
(:mod:`callgate.policy.switch`), is printed under a comment saying so, value by value
in ascending order: the values exclude each other, so that order decides the same.
"""

from __future__ import annotations

from collections.abc import Iterable

from callgate.arch import X32_SYSCALL_BIT
from callgate.bpf.actions import format_action
from callgate.policy.model import ArgCheck, Op
from callgate.policy.plan import Branch, SectionPlan
from callgate.policy.reference import ENOSYS_ACTION, SKIPPED_NR, X32Rule
from callgate.policy.switch import Switch, split_runs

_SYMBOLS = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_TERMS_PER_LINE = 4
_COMMENT_WIDTH = 92


def _number(value: int) -> str:
    return str(value) if value < 0x1000 else hex(value)


def _check(check: ArgCheck) -> str:
    arg = f"$a{check.index}" + (".lo32" if check.width == 32 else "")
    op = Op(check.op)
    if op is Op.MASKED_EQ:
        assert check.value2 is not None
        return f"({arg} & {hex(check.value)}) == {_number(check.value2)}"
    return f"{arg} {_SYMBOLS[op]} {_number(check.value)}"


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs ``(first, last)`` of sorted ``numbers``."""
    runs: list[tuple[int, int]] = []
    for nr in numbers:
        if runs and runs[-1][1] == nr - 1:
            runs[-1] = (runs[-1][0], nr)
        else:
            runs.append((nr, nr))
    return runs


def _syscall_condition(numbers: list[int]) -> list[str]:
    terms = [
        f"$syscall == {a}" if a == b else f"$syscall >= {a} && $syscall <= {b}"
        for a, b in _runs(numbers)
    ]
    lines = [
        " || ".join(terms[i : i + _TERMS_PER_LINE]) for i in range(0, len(terms), _TERMS_PER_LINE)
    ]
    lines[0] = "if (" + lines[0]
    lines[1:] = ["    " + line for line in lines[1:]]
    lines = [line + " ||" for line in lines[:-1]] + [lines[-1] + ")"]
    return lines


def _wrap(heading: str, items: list[str]) -> list[str]:
    """``heading item, item, …`` in lines of at most ~92 columns, never inside an item."""
    lines = [heading]
    for i, item in enumerate(items):
        text = item + ("," if i < len(items) - 1 else "")
        if len(lines[-1]) + 1 + len(text) > _COMMENT_WIDTH:
            lines.append(text)
        else:
            lines[-1] += " " + text
    return lines


def _branches(branches: Iterable[Branch], indent: str) -> list[str]:
    out = []
    for part in split_runs(tuple(branches)):
        if isinstance(part, Switch):
            index, width = part.key
            arg = f"$a{index}" + (".lo32" if width == 32 else "")
            out.append(f"{indent}# {arg}: a binary search over {len(part.cases)} values")
            for value, cases in part.cases.items():
                pin = ArgCheck(index, Op.EQ, value, None, width)
                for case in cases:
                    out += _branch(Branch(case.action, (pin, *case.checks)), indent)
            continue
        out += _branch(part, indent)
    return out


def _branch(branch: Branch, indent: str) -> list[str]:
    action = f"action {format_action(branch.action)};"
    if branch.checks:
        return [f"{indent}if ({' && '.join(_check(c) for c in branch.checks)})",
                f"{indent}  {action}"]
    return [f"{indent}{action}"]


def render_pfc(plan: SectionPlan) -> str:
    """The whole filter as pseudo filter code, ending with a newline."""
    arch = plan.arch
    out = ["#", "# pseudo filter code start", "#"]
    out.append(f"# filter for arch {arch.name} ({plan.audit_arch})")
    out.append(f"if ($arch == {plan.audit_arch})")
    if plan.x32 is X32Rule.REJECT:
        out.append(f"  # x32 syscalls are refused; -1 ({SKIPPED_NR}) is a tracer's 'skip'")
        out.append(f"  if ($syscall >= {X32_SYSCALL_BIT} && $syscall != {SKIPPED_NR})")
        out.append(f"    action {format_action(plan.mismatch)};")
    elif plan.x32 is X32Rule.REQUIRE:
        out.append("  # x86_64 syscalls (without the x32 bit) are refused")
        out.append(f"  if ($syscall < {X32_SYSCALL_BIT})")
        out.append(f"    action {format_action(plan.mismatch)};")
    if plan.enosys_above is not None:
        out.append("  # newer syscalls than the profile knows look absent (runc's stub)")
        out.append(f"  if ($syscall > {plan.enosys_above})")
        out.append(f"    action {format_action(ENOSYS_ACTION)};")
    groups: dict[tuple[Branch, ...], list[int]] = {}
    for nr, branches in plan.syscalls.items():
        groups.setdefault(branches, []).append(nr)
    for branches, numbers in sorted(groups.items(), key=lambda item: item[1][0]):
        names = [f"{arch.name_of(nr) or '?'} ({nr})" for nr in numbers]
        heading = "syscall" if len(numbers) == 1 else "syscalls"
        out.extend(f"  # {line}" for line in _wrap(heading, names))
        out.extend("  " + line for line in _syscall_condition(numbers))
        out.extend(_branches(branches, "    "))
    out.append("  # default action")
    out.append(f"  action {format_action(plan.default)};")
    out.append("# invalid architecture action")
    out.append(f"action {format_action(plan.mismatch)};")
    out += ["#", "# pseudo filter code end", "#"]
    return "\n".join(out) + "\n"
