"""Why one call gets its verdict: worked out on the policy model and on the compiled BPF.

The model side walks the reference semantics (:mod:`callgate.policy.reference`)
step by step and keeps every intermediate result: the arch check, the x32 check,
``enosys_above``, each rule that names the call with each argument comparison, and
which matching rule wins (the most restrictive action). ``reference.decide`` is
also asked directly, so the walk itself is checked against the specification.

The BPF side runs the compiled program in the reference interpreter and keeps the
executed lines, annotated with the value each line put in A or X (as the interpreter
computed it) and whether each condition held.

All three answers must be equal. When they are not, the compiler (or this walk)
has a bug: :attr:`Explanation.agree` is false and the command line fails loudly.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from callgate.arch import X32_SYSCALL_BIT, Arch
from callgate.asm.disassembler import listing_lines
from callgate.bpf import opcodes as op
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import Execution, interpret
from callgate.bpf.seccomp_data import U32_MASK, SeccompData
from callgate.policy.model import Op, Rule, Section
from callgate.policy.reference import (
    ENOSYS_ACTION,
    X32Rule,
    decide,
    decision_order,
    holds,
    mismatch_action,
    wrong_abi,
    x32_rule,
)


class Stage(enum.StrEnum):
    """The step of the reference semantics that decided the call."""

    ARCH_MISMATCH = "arch_mismatch"  # seccomp_data.arch is not the filter's
    WRONG_ABI = "wrong_abi"  # x32 call on x86_64, or x86_64 call on x32
    ENOSYS_ABOVE = "enosys_above"  # number above the profile's newest syscall
    RULES = "rules"  # at least one rule matched
    DEFAULT = "default"  # no rule matched


@dataclass(frozen=True)
class CheckResult:
    """One argument comparison of a rule, with the values it compared."""

    index: int
    op: Op
    width: int
    value: int
    value2: int | None
    arg: int  # args[index], all 64 bits
    compared: int  # what the check looks at: the low word when width is 32
    holds: bool


@dataclass(frozen=True)
class RuleResult:
    """A rule that names the call, and whether all of its checks held."""

    number: int  # 1-based position in the section
    path: str  # where it is written: kernel.rules[2], syscalls[40]
    names: tuple[str, ...]  # its names that are this call on this arch
    action: int
    checks: tuple[CheckResult, ...]
    matched: bool
    comment: str


@dataclass(frozen=True)
class PathStep:
    """One executed instruction: its listing line (as disasm prints it) and what it did."""

    line: int
    listing: str
    note: str  # "A is 0x1", "true", "false", or ""


@dataclass(frozen=True)
class Explanation:
    """One call's verdict with its reasons: plain data, so text, JSON and tests read the same."""

    arch: str
    filter_arch: int  # the seccomp_data.arch value the filter expects
    name: str | None  # the call's name on this arch, if it has one
    nr: int
    call_arch: int
    ip: int
    args: tuple[int, ...]
    default: int
    stage: Stage
    reason: str
    rules: tuple[RuleResult, ...]  # the rules naming the call, when rules were consulted
    winners: tuple[int, ...]  # numbers of the rules whose action is the verdict
    explained: int  # the verdict the walk reaches
    reference: int  # reference.decide's verdict
    bpf: int  # the compiled program's return value
    path: tuple[PathStep, ...]
    program_length: int

    @property
    def agree(self) -> bool:
        return self.explained == self.reference == self.bpf

    def _repr_html_(self) -> str:
        """Jupyter: the call, the rules with each comparison, the path, the verdict."""
        from callgate.teach.display import explanation_html

        return explanation_html(self)


def explain_call(
    section: Section,
    arch: Arch,
    data: SeccompData,
    program: Sequence[Insn],
    rule_paths: Sequence[str] = (),
) -> Explanation:
    """Explain ``data``'s verdict under ``section`` on ``arch``; ``program`` is its compiled form.

    ``rule_paths`` names where each rule is written (parallel to ``section.rules``).
    """
    stage, reason, rules, winners, verdict = _walk(section, arch, data, rule_paths)
    execution = interpret(program, data)
    return Explanation(
        arch=arch.name,
        filter_arch=arch.audit_arch,
        name=arch.name_of(data.nr),
        nr=data.nr,
        call_arch=data.arch,
        ip=data.instruction_pointer,
        args=tuple(data.args),
        default=section.default,
        stage=stage,
        reason=reason,
        rules=rules,
        winners=winners,
        explained=verdict,
        reference=decide(section, arch, data),
        bpf=execution.ret,
        path=_path(program, arch, execution),
        program_length=len(program),
    )


@dataclass(frozen=True)
class ProgramExplanation:
    """A call run through a bare program: no policy, so no rules - the path and verdict."""

    arch: str
    name: str | None  # the call's name on this arch, if it has one
    nr: int
    call_arch: int
    ip: int
    args: tuple[int, ...]
    bpf: int  # the program's return value
    path: tuple[PathStep, ...]
    program_length: int

    def _repr_html_(self) -> str:
        """Jupyter: the call, the path with what each line did, the verdict."""
        from callgate.teach.display import explanation_html

        return explanation_html(self)


def explain_program(program: Sequence[Insn], arch: Arch, data: SeccompData) -> ProgramExplanation:
    """Run ``data`` through ``program`` and keep the executed lines, each annotated."""
    execution = interpret(program, data)
    return ProgramExplanation(
        arch=arch.name,
        name=arch.name_of(data.nr),
        nr=data.nr,
        call_arch=data.arch,
        ip=data.instruction_pointer,
        args=tuple(data.args),
        bpf=execution.ret,
        path=_path(program, arch, execution),
        program_length=len(program),
    )


# ---------------------------------------------------------------------------
# The model side.

_Walk = tuple[Stage, str, tuple[RuleResult, ...], tuple[int, ...], int]


def _walk(section: Section, arch: Arch, data: SeccompData, rule_paths: Sequence[str]) -> _Walk:
    """The reference semantics, one step at a time, keeping the reason for the verdict."""
    nr = data.nr & U32_MASK
    expected = arch.audit_arch
    mismatch = mismatch_action(section)
    if data.arch != expected:
        return (
            Stage.ARCH_MISMATCH,
            f"seccomp_data.arch {data.arch:#x} is not {expected:#x}, the arch this filter is "
            f"for ({arch.name}): the mismatch action {format_action(mismatch)}",
            (), (), mismatch,
        )
    if wrong_abi(arch, nr):
        if x32_rule(arch) is X32Rule.REJECT:
            why = (f"nr {nr:#x} has the x32 bit ({X32_SYSCALL_BIT:#x}) set: an x32 call, "
                   "which a filter for x86_64 refuses")
        else:
            why = (f"nr {nr:#x} lacks the x32 bit ({X32_SYSCALL_BIT:#x}): an x86_64 call, "
                   "which a filter for x32 refuses")
        return (Stage.WRONG_ABI, f"{why} with the mismatch action {format_action(mismatch)}",
                (), (), mismatch)
    if section.enosys_above is not None and nr > section.enosys_above:
        return (
            Stage.ENOSYS_ABOVE,
            f"nr {nr:#x} is above enosys_above {section.enosys_above:#x} (the newest syscall "
            f"the profile knows): {format_action(ENOSYS_ACTION)} whatever the rules say, "
            "as runc answers",
            (), (), ENOSYS_ACTION,
        )
    rules = tuple(
        _rule_result(i, rule, arch, nr, data, rule_paths)
        for i, rule in enumerate(section.rules)
        if any(arch.numbers.get(name) == nr for name in rule.names)
    )
    matched = [r for r in rules if r.matched]
    call = arch.name_of(nr) or f"nr {nr:#x}"
    if not matched:
        why = f"no rule names {call}" if not rules else f"no rule naming {call} matches"
        return (
            Stage.DEFAULT,
            f"{why}: the section default {format_action(section.default)}",
            rules, (), section.default,
        )
    best = min((r.action for r in matched), key=decision_order)
    winners = tuple(r.number for r in matched if r.action == best)
    return Stage.RULES, _why_winner(matched, best), rules, winners, best


def _rule_result(
    i: int, rule: Rule, arch: Arch, nr: int, data: SeccompData, rule_paths: Sequence[str]
) -> RuleResult:
    checks = tuple(
        CheckResult(
            index=c.index,
            op=Op(c.op),
            width=c.width,
            value=c.value,
            value2=c.value2,
            arg=data.args[c.index],
            compared=data.args[c.index] & ((1 << c.width) - 1),
            holds=holds(c, data.args),
        )
        for c in rule.args
    )
    return RuleResult(
        number=i + 1,
        path=rule_paths[i] if i < len(rule_paths) else f"rules[{i}]",
        names=tuple(name for name in rule.names if arch.numbers.get(name) == nr),
        action=rule.action,
        checks=checks,
        matched=all(c.holds for c in checks),
        comment=rule.comment,
    )


def _why_winner(matched: list[RuleResult], best: int) -> str:
    numbers = ", ".join(str(r.number) for r in matched)
    if len(matched) == 1:
        return f"only rule {numbers} matches: {format_action(best)}"
    distinct = sorted({r.action for r in matched}, key=decision_order)
    if len(distinct) == 1:
        return f"rules {numbers} match, all with {format_action(best)}"
    listed = ", ".join(f"{r.number} ({format_action(r.action)})" for r in matched)
    why = (
        f"rules {listed} match; the most restrictive action wins "
        f"(kill_process < kill_thread < trap < errno < user_notif < trace < log < allow): "
        f"{format_action(best)}"
    )
    same_kind = [a for a in distinct if decision_order(a)[0] == decision_order(best)[0]]
    if len(same_kind) > 1:
        spelled = " and ".join(map(format_action, same_kind))
        why += f"; {spelled} are one action, and the smaller data wins"
    return why


# ---------------------------------------------------------------------------
# The BPF side.


def _path(program: Sequence[Insn], arch: Arch, execution: Execution) -> tuple[PathStep, ...]:
    lines = listing_lines(program, arch)
    notes = _notes(program, execution)
    return tuple(
        PathStep(pc, lines[pc], note) for pc, note in zip(execution.path, notes, strict=True)
    )


def _notes(program: Sequence[Insn], execution: Execution) -> list[str]:
    """What each executed line did: the value it put in A or X, or whether its test held.

    Both come from the interpreter's run: the registers as the next line found them,
    and for a test, which line ran next, read against the statement as the listing
    prints it. The last line (a return, or a division by zero) has no note.
    """
    notes = []
    executed, registers = execution.path, execution.registers
    for step, pc in enumerate(executed[:-1]):
        insn = program[pc]
        cls = op.bpf_class(insn.code)
        a, x = registers[step + 1]
        note = ""
        if cls == op.BPF_LD or cls == op.BPF_ALU:
            note = f"A is {a:#x}"
        elif cls == op.BPF_LDX:
            note = f"X is {x:#x}"
        elif cls == op.BPF_MISC:
            note = f"X is {x:#x}" if op.bpf_miscop(insn.code) == op.BPF_TAX else f"A is {a:#x}"
        elif cls == op.BPF_JMP and op.bpf_op(insn.code) != op.BPF_JA and insn.jt != insn.jf:
            note = str(_printed_test_held(pc, insn, executed[step + 1])).lower()
        notes.append(note)
    return [*notes, ""]


def _printed_test_held(pc: int, insn: Insn, next_pc: int) -> bool:
    """Whether the condition the listing prints held.

    The disassembler prints ``if (A == k) goto JT [else goto JF]`` when jt is
    non-zero, and the negation ``if (A != k) goto JF`` when jt is 0.
    """
    if insn.jt == 0:
        return next_pc == pc + 1 + insn.jf
    return next_pc == pc + 1 + insn.jt
