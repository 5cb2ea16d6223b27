"""Writing the learned policy: TOML text whose comments say why each rule is there.

The text is generated, but meant to be read and edited: a header that says how it was
learned and what learning cannot know, then per gate what the run did (calls, the values
seen) and which arguments were pinned or left open and why, then the ``[kernel]``
section with every syscall the run made and where it went. Rules are written in gate
number order and values in a fixed form, so learning twice from the same run gives the
same file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callgate.bpf.actions import format_action
from callgate.bpf.seccomp_data import ARG_COUNT
from callgate.learn.argkinds import param_names
from callgate.learn.gate_section import ALLOWED_UNUSED, GatePlan, describe_arg
from callgate.learn.imports import StaticImports
from callgate.learn.kernel_section import KernelPlan
from callgate.policy.model import ArgCheck, Op, Rule

GATES_DEFAULT = "errno(ENOSYS)"
WATCHED = {"strace": "with strace -f", "user_notif": "by a USER_NOTIF supervisor"}


@dataclass(frozen=True, slots=True)
class RunDescription:
    """How the learning run was started, for the header (env values are left out)."""

    args: Sequence[str]
    env_names: Sequence[str]
    preopens: Sequence[str]
    exit_code: int


def value_text(value: int) -> str:
    """Small numbers in decimal, flags and masks in hex; TOML's i64 range is respected."""
    if value >= 2**63:
        return json.dumps(hex(value))
    return str(value) if value < 10 else hex(value)


def check_text(check: ArgCheck) -> str:
    parts = [f"index = {check.index}", f'op = "{check.op.value}"',
             f"value = {value_text(check.value)}"]
    if check.op is Op.MASKED_EQ:
        parts.append(f"value2 = {value_text(check.value2 or 0)}")
    if check.width != 64:
        parts.append(f"width = {check.width}")
    return "{ " + ", ".join(parts) + " }"


def rule_text(section: str, names: Iterable[str], action: str, checks: Sequence[ArgCheck] = (),
              comment: str = "") -> list[str]:
    lines = [f"[[{section}.rules]]", f"names = {json.dumps(list(names))}",
             f'action = "{action}"']
    if checks:
        texts = [check_text(c) for c in checks]
        one_line = f"args = [{', '.join(texts)}]"
        lines.append(one_line if len(one_line) <= 92 else
                     "args = [" + ",\n        ".join(texts) + "]")
    if comment:
        lines.append(f"comment = {json.dumps(comment)}")
    return lines


def _calls(n: int) -> str:
    return f"{n} call{'s' if n != 1 else ''}"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _source(reason: str) -> str:
    """``runtime baseline: WHY`` -> ``runtime baseline``; ``gate MOD.NAME`` -> ``gate NAME``."""
    if reason.startswith("gate "):
        return "gate " + reason.rpartition(".")[2]
    return reason.partition(":")[0]


def _wrap(text: str, indent: str = "# ", width: int = 92) -> list[str]:
    """``text`` as comment lines of at most ``width`` characters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(indent + line)
    return lines


def header(name: str, static: StaticImports, plans: Sequence[GatePlan],
           run: RunDescription) -> list[str]:
    allowed = {plan.spec.name for plan in plans}
    unused = [n for n in static.names() if n not in allowed]
    called = sum(1 for plan in plans if plan.calls)
    calls = sum(plan.calls for plan in plans)
    lines = [f"# A least-privilege policy for {name}, learned by `callgate learn`.", "#"]
    lines += _wrap(f"Static bound: the import table names {len(static.gates)} gates, and no "
                   f"run can call anything else: {', '.join(static.names()) or 'none'}.")
    described = [f"args {json.dumps(list(run.args))}"]
    if run.preopens:
        described.append(f"preopens {', '.join(run.preopens)}")
    if run.env_names:
        described.append(f"env {', '.join(run.env_names)}")
    lines += _wrap(f"Learning run ({'; '.join(described)}), every gate allowed and recorded: "
                   f"it called {called} of them ({_calls(calls)}) and exited with status "
                   f"{run.exit_code}.")
    if unused:
        lines += _wrap(f"Imported but never called, so denied: {', '.join(unused)}.")
    lines.append("#")
    lines += _wrap("What learning cannot know: code paths this run did not take (another "
                   "input may need more), and which file an fd number stands for (a pinned "
                   "fd 4 is whatever the guest opened fourth). Review before trusting it; "
                   "see docs/learn.md.")
    return lines


def gates_text(plans: Sequence[GatePlan]) -> list[str]:
    lines = ["[gates]"]
    lines += _wrap("Every gate not allowed below - imported but unused, or not imported at "
                   "all - fails like a function this host does not have, as in callgate's "
                   "shipped default policy.")
    lines.append(f'default = "{GATES_DEFAULT}"')
    for plan in plans:
        lines.append("")
        lines += _gate_comment(plan)
        for number, (checks, calls) in enumerate(plan.combos):
            if checks:
                seen = ", ".join(f"{param_names(plan.spec)[c.index]} = {value_text(c.value)}"
                                 for c in checks)
                lines.append(f"# {seen}: {_calls(calls)}")
            lines += rule_text("gates", [plan.spec.name], "allow", checks)
            if number + 1 < len(plan.combos):
                lines.append("")
    return lines


def _gate_comment(plan: GatePlan) -> list[str]:
    spec = plan.spec
    names = param_names(spec)
    text = f"{spec.name} (gate {spec.number})" + (f": {spec.doc.rstrip('.')}." if spec.doc
                                                   else ".")
    if not plan.calls:
        return _wrap(f"{text} Not called by this run, allowed anyway: "
                     f"{ALLOWED_UNUSED[spec.name]}.")
    text += f" Called {_times(plan.calls)}."
    if plan.pinned:
        pinned = ", ".join(describe_arg(spec, i) for i in plan.pinned)
        text += f" Pinned to the values seen: {pinned}."
    released = dict(plan.released)
    for index, why in plan.released:
        text += f" Left open: {describe_arg(spec, index)}, {why}."
    others = [names[i] for i in range(min(len(names), ARG_COUNT))
              if i not in plan.pinned and i not in released]
    if others:
        text += f" Not pinned, as they vary with input and memory layout: {', '.join(others)}."
    if len(names) > ARG_COUNT:
        text += (f" A filter sees six arguments, not {', '.join(names[ARG_COUNT:])}.")
    return _wrap(text)


def kernel_text(plan: KernelPlan | None) -> list[str]:
    if plan is None:
        return _wrap("No [kernel] section: it was not learned (--no-kernel). `callgate run "
                     "--kernel` derives the host filter from the runtime baseline and the "
                     "gates above.")
    lines = ["[kernel]"]
    lines += _wrap(f"The host process's own seccomp filter, for `callgate run --kernel` and "
                   f"--isolate. callgate derives it from the runtime baseline, the host "
                   f"syscalls of each gate allowed above, and the rules here. The learning "
                   f"run's process made {len(plan.observed)} distinct syscalls (arch "
                   f"{plan.arch.name}) between instantiation and the end of _start, "
                   f"watched {WATCHED[plan.method]}:")
    for name, reasons in plan.covered.items():
        sources = dict.fromkeys(_source(reason) for reason in reasons)
        lines += _wrap(f"{name} ({_calls(plan.observed[name])}): already allowed - "
                       f"{'; '.join(sources)}", indent="#   ")
    for name, why in plan.denied.items():
        lines += _wrap(f"{name} ({_calls(plan.observed[name])}): dropped, denied whatever a "
                       f"policy says - {why}", indent="#   ")
    for name in plan.unknown:
        lines += _wrap(f"{name} ({_calls(plan.observed[name])}): dropped, not in callgate's "
                       f"syscall table for {plan.arch.name}, so no rule can name it",
                       indent="#   ")
    for rule in plan.added:
        lines += _wrap(f"{rule.names[0]} ({_calls(plan.observed[rule.names[0]])}): allowed "
                       "by a rule below", indent="#   ")
    lines += _wrap("Anything else gets the runtime baseline's default, as with callgate's "
                   "shipped default policy.")
    lines.append(f'default = "{format_action(plan.default).lower()}"')
    for rule in plan.added:
        lines.append("")
        lines += _added_comment(rule)
        lines += rule_text("kernel", rule.names, "allow", rule.args, rule.comment)
    return lines


def _added_comment(rule: Rule) -> list[str]:
    if not rule.args:
        return []
    return _wrap(f"{rule.names[0]} only with these arguments: callgate's fixed rules deny it "
                 "otherwise, and this rule must not say the opposite.")


def policy_text(name: str, static: StaticImports, plans: Sequence[GatePlan],
                kernel: KernelPlan | None, run: RunDescription) -> str:
    lines = [*header(name, static, plans, run), "", *gates_text(plans), "", *kernel_text(kernel)]
    return "\n".join(lines) + "\n"
