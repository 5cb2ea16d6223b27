"""An :class:`~callgate.teach.explain.Explanation` as text for a student, or as JSON for a tool.

The text has three parts: the call as the filter sees it, how the policy decides
(each rule naming the call, each comparison with the values compared), and the
executed BPF path in the listing layout ``callgate disasm`` and ``callgate emu``
print, with the value each load put in A and whether each test held.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from typing import overload

from callgate.asm.syntax import LINE_LABEL, LISTING_HEADER
from callgate.bpf.actions import format_action
from callgate.bpf.seccomp_data import U32_MASK
from callgate.policy.model import Op
from callgate.teach.explain import (
    CheckResult,
    Explanation,
    PathStep,
    ProgramExplanation,
    RuleResult,
    Stage,
)

OP_SYMBOLS = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
REASON_WIDTH = 92
# Keys whose values are seccomp return values; the JSON adds their spelling as KEY_text.
_ACTION_KEYS = frozenset({"action", "default", "explained", "reference", "bpf"})


def check_text(check: CheckResult) -> tuple[str, str]:
    """The check as written and as evaluated: (``args[0] == 0x1``, ``0x2 == 0x1  false``).

    A 32-bit check is written with ``(low 32 bits)``, and evaluates the low word only.
    """
    arg = f"args[{check.index}]"
    if check.op is Op.MASKED_EQ:
        written = f"{arg} & {check.value:#x} == {check.value2:#x}"
        evaluated = f"{check.compared:#x} & {check.value:#x} = {check.compared & check.value:#x}"
        evaluated += f" == {check.value2:#x}"
    else:
        sym = OP_SYMBOLS[check.op]
        written = f"{arg} {sym} {check.value:#x}"
        evaluated = f"{check.compared:#x} {sym} {check.value:#x}"
    if check.width == 32:
        written += " (low 32 bits)"
    return written, f"{evaluated}  {str(check.holds).lower()}"


def width_note(check: CheckResult) -> str:
    """How the compiled program compares this check, one 32-bit word at a time ("" if plain)."""
    arg_hi, arg_lo = check.arg >> 32, check.arg & U32_MASK
    if check.width == 32:
        return f"high word {arg_hi:#x} ignored: only the low word is compared" if arg_hi else ""
    v_hi, v_lo = check.value >> 32, check.value & U32_MASK
    if check.op is Op.MASKED_EQ:
        d = check.value2 or 0
        return (
            f"64-bit: high words {arg_hi:#x} & {v_hi:#x} == {d >> 32:#x}, "
            f"then low words {arg_lo:#x} & {v_lo:#x} == {d & U32_MASK:#x}"
        )
    return f"64-bit: high words {arg_hi:#x} vs {v_hi:#x}, then low words {arg_lo:#x} vs {v_lo:#x}"


def _rule_lines(rule: RuleResult, winners: tuple[int, ...]) -> list[str]:
    verdict = "matches" if rule.matched else "does not match"
    if rule.number in winners:
        verdict += " (decides)"
    names = ", ".join(rule.names)
    lines = [f"  rule {rule.number} ({rule.path}) {names} -> {format_action(rule.action)}: "
             f"{verdict}"]
    if rule.comment:
        lines.append(f"      # {rule.comment}")
    if not rule.checks:
        lines.append("      no argument checks: the name alone matches")
    rows = [check_text(c) for c in rule.checks]
    width = max((len(w) for w, _ in rows), default=0)
    for check, (written, evaluated) in zip(rule.checks, rows, strict=True):
        lines.append(f"      {written:<{width}}   {evaluated}")
        if note := width_note(check):
            lines.append(f"      {'':<{width}}   ({note})")
    return lines


def _call_line(e: Explanation | ProgramExplanation) -> str:
    what = "gate" if e.arch == "callgate" else "syscall"
    name = f"{e.name} = {what} {e.nr} ({e.nr:#x})" if e.name else f"{what} number {e.nr:#x}"
    return f"Call: {name} on {e.arch}"


def render_text(e: Explanation, title: str) -> str:
    """The whole explanation for a terminal; ``title`` names the policy and section."""
    out = [
        _call_line(e),
        f"  seccomp_data: nr {e.nr:#x}, arch {e.call_arch:#x}, ip {e.ip:#x}",
        "  args: " + " ".join(f"{a:#x}" for a in e.args),
        f"Policy: {title}, default {format_action(e.default)}",
        "",
        "How the policy decides (reference semantics):",
    ]
    if e.stage in (Stage.RULES, Stage.DEFAULT):
        out.append(f"  arch {e.call_arch:#x} is the filter's arch ({e.arch})")
        for rule in e.rules:
            out += _rule_lines(rule, e.winners)
    out += [textwrap.fill(e.reason, REASON_WIDTH, initial_indent="  => ",
                          subsequent_indent="     ", break_on_hyphens=False), ""]
    out.append(f"The compiled program ({e.program_length} instructions), the path it takes:")
    out += _path_lines(e.path)
    out += ["", _verdict_line(e)]
    return "\n".join(out) + "\n"


def render_program_text(e: ProgramExplanation, title: str) -> str:
    """A call through a bare program: the call, the annotated path, the verdict."""
    out = [
        _call_line(e),
        f"  seccomp_data: nr {e.nr:#x}, arch {e.call_arch:#x}, ip {e.ip:#x}",
        "  args: " + " ".join(f"{a:#x}" for a in e.args),
        f"Program: {title}, {e.program_length} instructions",
        "  a program has no rules to explain (give a policy for that); the path it takes:",
    ]
    out += _path_lines(e.path)
    last = LINE_LABEL.format(line=e.path[-1].line)
    out += ["", f"Verdict: {format_action(e.bpf)} (return at line {last})"]
    return "\n".join(out) + "\n"


def _path_lines(path: tuple[PathStep, ...]) -> list[str]:
    listing = [step.listing for step in path]
    width = max(len(line) for line in listing)
    out = [LISTING_HEADER.rstrip("\n")]
    for step, line in zip(path, listing, strict=True):
        out.append(f"{line:<{width}}  # {step.note}" if step.note else line)
    return out


def _verdict_line(e: Explanation) -> str:
    last = LINE_LABEL.format(line=e.path[-1].line)
    if e.agree:
        return (f"Verdict: {format_action(e.bpf)} (the policy and the compiled program agree; "
                f"return at line {last})")
    return (
        "DISAGREEMENT: the policy says "
        f"{format_action(e.reference)} (reference.decide; this explanation reached "
        f"{format_action(e.explained)}), the compiled program returns {format_action(e.bpf)} "
        f"at line {last}. This is a bug in callgate's compiler or in explain: please report "
        "it with this output."
    )


def render_json(e: Explanation, **header: str) -> str:
    """Plain data: every field of the explanation, actions also spelled (``bpf_text``)."""
    doc = {**header, **_spelled(dataclasses.asdict(e)), "agree": e.agree}
    return json.dumps(doc, indent=2) + "\n"


def render_program_json(e: ProgramExplanation, **header: str) -> str:
    """A program's explanation as plain data, like :func:`render_json`."""
    doc = {**header, **_spelled(dataclasses.asdict(e))}
    return json.dumps(doc, indent=2) + "\n"


@overload
def _spelled(value: dict[str, object]) -> dict[str, object]: ...


@overload
def _spelled(value: object) -> object: ...


def _spelled(value: object) -> object:
    if isinstance(value, dict):
        out: dict[object, object] = {}
        for key, item in value.items():
            out[key] = _spelled(item)
            if key in _ACTION_KEYS and isinstance(item, int):
                out[f"{key}_text"] = format_action(item)
        return out
    if isinstance(value, list | tuple):
        return [_spelled(item) for item in value]
    return value
