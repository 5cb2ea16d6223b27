"""A policy as HTML tables, for Jupyter (``Policy._repr_html_``): each section's default,
its rules (names, action, argument checks, comment) with actions coloured by how
restrictive they are, and the timing and Landlock options. Plain HTML, no scripts; the
control-flow graph of the compiled program is :mod:`callgate.teach.display`'s."""

from __future__ import annotations

import html

from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    effective_action,
    format_action,
)
from callgate.policy.model import ArgCheck, Op, Policy, Section

# The same colours as `callgate graph`'s return nodes: green allow ... red kill.
ACTION_COLOURS = {
    SECCOMP_RET_ALLOW: "#c8e6c9",
    SECCOMP_RET_LOG: "#dcedc8",
    SECCOMP_RET_TRACE: "#fff9c4",
    SECCOMP_RET_USER_NOTIF: "#fff9c4",
    SECCOMP_RET_ERRNO: "#ffe0b2",
    SECCOMP_RET_TRAP: "#ffccbc",
    SECCOMP_RET_KILL_THREAD: "#ef9a9a",
    SECCOMP_RET_KILL_PROCESS: "#ef9a9a",
}
_OPS = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_CELL = "border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top"


def action_cell(action: int) -> str:
    colour = ACTION_COLOURS.get(effective_action(action), "#eeeeee")
    return (f'<td style="{_CELL};background:{colour}"><code>'
            f"{html.escape(format_action(action))}</code></td>")


def check_text(check: ArgCheck) -> str:
    arg = f"args[{check.index}]"
    if check.op is Op.MASKED_EQ:
        text = f"{arg} & {check.value:#x} == {check.value2 or 0:#x}"
    else:
        text = f"{arg} {_OPS[check.op]} {check.value:#x}"
    return text + (" (low 32 bits)" if check.width == 32 else "")


def section_html(name: str, section: Section) -> str:
    rows = [f'<tr><th style="{_CELL}">#</th><th style="{_CELL}">names</th>'
            f'<th style="{_CELL}">action</th><th style="{_CELL}">when (all hold)</th>'
            f'<th style="{_CELL}">comment</th></tr>']
    for i, rule in enumerate(section.rules, 1):
        checks = "<br>".join(html.escape(check_text(c)) for c in rule.args) or "always"
        rows.append(f'<tr><td style="{_CELL}">{i}</td><td style="{_CELL}"><code>'
                    f'{html.escape(", ".join(rule.names))}</code></td>{action_cell(rule.action)}'
                    f'<td style="{_CELL}"><code>{checks}</code></td>'
                    f'<td style="{_CELL}">{html.escape(rule.comment)}</td></tr>')
    rows.append(f'<tr><td style="{_CELL}"></td><td style="{_CELL}"><em>anything else '
                f"(default)</em></td>{action_cell(section.default)}"
                f'<td style="{_CELL}"></td><td style="{_CELL}"></td></tr>')
    extra = ""
    if section.mismatch_action is not None:
        extra = f"<br>another arch: <code>{format_action(section.mismatch_action)}</code>"
    return (f"<h4>[{name}]: {len(section.rules)} rule{'s' * (len(section.rules) != 1)}, "
            f"the most restrictive match wins{extra}</h4>"
            f'<table style="border-collapse:collapse">{"".join(rows)}</table>')


def policy_html(policy: Policy) -> str:
    parts = [f"<div><p><strong>policy</strong> <code>{html.escape(policy.source)}</code></p>"]
    for name, section in (("gates", policy.gates), ("kernel", policy.kernel)):
        if section is not None:
            parts.append(section_html(name, section))
    timing = policy.timing
    if timing.active:
        parts.append(f"<p>timing: jitter {timing.jitter_ns} ns, clock resolution "
                     f"{timing.clock_resolution_ns} ns</p>")
    if policy.flags:
        parts.append(f"<p>filter flags: <code>{html.escape(', '.join(policy.flags))}</code></p>")
    if policy.landlock is not None:
        ll = policy.landlock
        parts.append("<p>landlock: read <code>" + html.escape(", ".join(ll.read) or "-")
                     + "</code>, write <code>" + html.escape(", ".join(ll.write) or "-")
                     + "</code></p>")
    parts.append("</div>")
    return "".join(parts)
