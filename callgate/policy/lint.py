"""``callgate check``: find the mistakes a policy loads fine with.

Each finding has a level: ``error`` (the policy cannot load, or a rule can never
match: almost certainly a bug), ``warning`` (a rule that never takes effect,
names the target arch lacks, ignored fields) or ``info`` (facts worth knowing,
such as names runc skips). Every finding names the file and the key path.

Shadowing is decided exactly (:mod:`callgate.policy.argspace`): rule A shadows
rule B for a name both list when every call B matches also matches A and A's
action wins (the kernel's precedence; equal actions: the smaller data). B then
never decides that name. Only single-rule shadowing is reported; B covered by
the union of several rules is not detected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from callgate.arch import Arch, get_arch, native_arch
from callgate.bpf.actions import (
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    action_of,
    format_action,
    precedence_key,
)
from callgate.policy.argspace import implies, overlap, unsatisfiable_indexes
from callgate.policy.errors import PolicyError
from callgate.policy.loaded import LoadResult
from callgate.policy.model import ArgCheck, GateTiming, Layer, Op, Rule, Section
from callgate.policy.reference import decision_order
from callgate.policy.toml_loader import format_duration

LEVELS = ("error", "warning", "info")  # most serious first (also within one key path)


@dataclass(frozen=True, slots=True)
class Finding:
    level: str
    source: str
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.key_path}" if self.key_path else self.source
        return f"{where}: {self.level}: {self.message}"


def lint_error(err: PolicyError) -> list[Finding]:
    """A policy that does not load: each of its problems is an error finding."""
    return [Finding("error", p.source, p.key_path, p.message) for p in err.problems]


def lint(result: LoadResult, arch: Arch | None = None,
         layers: Iterable[Layer] = tuple(Layer)) -> list[Finding]:
    """Every finding for a loaded policy; kernel rules are judged on ``arch`` (default native)."""
    source = result.policy.source
    findings = [Finding("warning", w.source, w.key_path, w.message) for w in result.warnings]
    findings += [Finding("info", n.source, n.key_path, n.message) for n in result.notes]
    for layer in layers:
        section = result.policy.section(layer)
        if section is None:
            continue
        layer_arch = get_arch("callgate") if layer is Layer.GATES else (arch or native_arch())
        paths = [result.rule_path(layer, i) for i in range(len(section.rules))]
        findings += _SectionLint(source, layer, section, paths, layer_arch,
                                 oci=result.format == "oci").run()
    if Layer.GATES in tuple(layers):
        findings += timing_findings(source, result.policy.timing)
    return findings


def timing_findings(source: str, timing: GateTiming) -> list[Finding]:
    """What ``[gates] jitter`` and ``[gates.clocks] resolution`` cost, and what they leave."""
    out = []
    if timing.jitter_ns:
        most, mean = format_duration(timing.jitter_ns), format_duration(timing.jitter_ns // 2)
        out.append(Finding(
            "info", source, "gates.jitter",
            f"every gate call first waits a random time up to {most} (on "
            f"average {mean}), busy on the host's CPU, and the plugin's "
            "gates all run in Python (not the native core): it blurs timing channels between "
            "plugins, and a sender that repeats itself gets through (docs/covert.md)"))
    if timing.clock_resolution_ns:
        step = format_duration(timing.clock_resolution_ns)
        out.append(Finding(
            "info", source, "gates.clocks.resolution",
            f"clock_time_get answers in steps of {step}; file "
            "timestamps (fd_filestat_get, path_filestat_get) are not coarsened, and a guest "
            "that counts its own work between two ticks still measures finer "
            "(docs/covert.md)"))
    return out


# A kernel TRAP is a SIGSYS for the process to handle; callgate's own lockdown has no handler.
KERNEL_TRAP_NOTE = ("trap raises SIGSYS in the calling process: `callgate run --kernel` and "
                    "the isolated worker install no SIGSYS handler, so there the call ends "
                    "the process as kill_process would (exit 159); errno(N) denies and lets "
                    "it run on, user_notif asks a supervisor")


class _SectionLint:
    def __init__(self, source: str, layer: Layer, section: Section, paths: list[str],
                 arch: Arch, oci: bool = False) -> None:
        self.source = source
        self.layer = layer
        self.oci = oci
        self.section = section
        self.paths = paths
        self.arch = arch
        self.findings: list[Finding] = []
        self.live = [not unsatisfiable_indexes(rule.args) for rule in section.rules]

    def add(self, level: str, index: int, message: str) -> None:
        self.findings.append(Finding(level, self.source, self.paths[index], message))

    def run(self) -> list[Finding]:
        mismatch = self.section.mismatch_action
        if (not self.arch.is_gate_layer and mismatch is not None
                and precedence_key(mismatch) >= precedence_key(SECCOMP_RET_TRACE)):
            self.findings.append(Finding(
                "warning", self.source, f"{self.layer.value}.arch_mismatch",
                f"{format_action(mismatch)} lets calls through another ABI (a 32-bit int 0x80 "
                "call on x86_64, say) bypass every rule; use kill_process or errno"))
        if not self.arch.is_gate_layer and action_of(self.section.default) == SECCOMP_RET_TRAP:
            self.findings.append(Finding("info", self.source, f"{self.layer.value}.default",
                                         KERNEL_TRAP_NOTE))
        for i, rule in enumerate(self.section.rules):
            self._never_matches(i, rule)
            self._arch_names(i, rule)
            if (self.live[i] and not self.arch.is_gate_layer
                    and action_of(rule.action) == SECCOMP_RET_TRAP):
                self.add("info", i, KERNEL_TRAP_NOTE)
        by_name: dict[str, list[int]] = {}
        for i, rule in enumerate(self.section.rules):
            for name in dict.fromkeys(rule.names):
                # App gates have no number in the gate arch's table, yet shadow all the same.
                if self.live[i] and (self.arch.is_gate_layer or name in self.arch.numbers):
                    by_name.setdefault(name, []).append(i)
        self._shadowed(by_name)
        self._same_as_default(by_name)
        self._ties(by_name)
        if self.oci:
            self._libseccomp_conflicts(by_name)
        order = {path: i for i, path in enumerate(self.paths)}
        return sorted(self.findings, key=lambda f: (order.get(f.key_path, -1),
                                                    LEVELS.index(f.level)))

    def _never_matches(self, i: int, rule: Rule) -> None:
        for index in unsatisfiable_indexes(rule.args):
            checks = [c for c in rule.args if c.index == index]
            self.add("error", i, f"can never match: {_why_never(checks)}")

    def _arch_names(self, i: int, rule: Rule) -> None:
        if self.arch.is_gate_layer:
            return
        missing = [n for n in rule.names if n not in self.arch.numbers]
        if not missing:
            return
        if len(missing) == len(rule.names):
            self.add("warning", i, f"none of its names exist on {self.arch.name}, so the rule "
                     f"does nothing there: {', '.join(missing)}")
        else:
            self.add("info", i, f"not on {self.arch.name}, skipped there: {', '.join(missing)}")

    def _shadowed(self, by_name: dict[str, list[int]]) -> None:
        shadows: dict[int, dict[int, list[str]]] = {}
        for name, indexes in by_name.items():
            for b in indexes:
                for a in indexes:
                    if a != b and self._shadows(a, b):
                        shadows.setdefault(b, {}).setdefault(a, []).append(name)
                        break
        for b, by_winner in sorted(shadows.items()):
            rule = self.section.rules[b]
            for a, names in by_winner.items():
                winner = self.section.rules[a]
                covered = "all its names" if len(names) == len(set(rule.names)) \
                    else ", ".join(names)
                self.add("warning", b, f"shadowed by {self.paths[a]} "
                         f"({format_action(winner.action)}) for {covered}: every call it "
                         f"matches also matches that rule, whose action wins")

    def _shadows(self, a: int, b: int) -> bool:
        rule_a, rule_b = self.section.rules[a], self.section.rules[b]
        order_a, order_b = decision_order(rule_a.action), decision_order(rule_b.action)
        if order_a > order_b or not implies(rule_b.args, rule_a.args):
            return False
        if order_a == order_b and implies(rule_a.args, rule_b.args):
            return a < b  # identical rules: only the later one is redundant
        return True

    def _same_as_default(self, by_name: dict[str, list[int]]) -> None:
        """A rule with the default's action changes nothing unless it beats another rule."""
        default = self.section.default
        for i, rule in enumerate(self.section.rules):
            if rule.action != default or not self.live[i]:
                continue
            names = [n for n in dict.fromkeys(rule.names) if n in by_name]
            beaten = [n for n in names if any(
                j != i and decision_order(self.section.rules[j].action) > decision_order(default)
                and overlap(rule.args, self.section.rules[j].args) for j in by_name[n])]
            if names and not beaten:
                self.add("warning", i, f"redundant: its action {format_action(default)} is the "
                         "default, and it overrides no other rule")

    def _ties(self, by_name: dict[str, list[int]]) -> None:
        seen: set[tuple[int, int]] = set()
        for name, indexes in by_name.items():
            for x in indexes:
                for y in indexes:
                    first, second = self.section.rules[x], self.section.rules[y]
                    if (x >= y or (x, y) in seen or first.action == second.action
                            or precedence_key(first.action) != precedence_key(second.action)
                            or not overlap(first.args, second.args)):
                        continue
                    seen.add((x, y))
                    win = min(first.action, second.action, key=decision_order)
                    self.add("info", y, f"{self.paths[x]} also matches some calls to {name!r} "
                             f"with an action of equal rank ({format_action(first.action)} vs "
                             f"{format_action(second.action)}); {format_action(win)} wins "
                             "(the smaller data)")


    def _libseccomp_conflicts(self, by_name: dict[str, list[int]]) -> None:
        """Overlapping rules with different actions: where Docker's filter may differ."""
        flagged: set[tuple[int, int]] = set()
        for name, indexes in by_name.items():
            for x in indexes:
                for y in indexes:
                    first, second = self.section.rules[x], self.section.rules[y]
                    if (x >= y or (x, y) in flagged or first.action == second.action
                            or not overlap(first.args, second.args)):
                        continue
                    flagged.add((x, y))
                    self.add("warning", y, f"overlaps {self.paths[x]} on {name!r} with another "
                             f"action ({format_action(second.action)} vs "
                             f"{format_action(first.action)}): callgate applies the most "
                             "restrictive, but libseccomp under runc does not (an unconditional "
                             "rule replaces conditional ones, else the first match in its "
                             "argument order wins), so Docker's filter may decide otherwise")


def _why_never(checks: list[ArgCheck]) -> str:
    if len(checks) == 1:
        c = checks[0]
        if c.op is Op.MASKED_EQ:
            return (f"args[{c.index}] masked_eq: value2 {c.value2:#x} has bits outside the mask "
                    f"{c.value:#x}, so arg & mask never equals it")
        return (f"args[{c.index}] {c.op.value} {c.value:#x} holds for no unsigned "
                f"{c.width}-bit value")
    text = " and ".join(f"{c.op.value} {c.value:#x}" + (f"/{c.value2:#x}" if c.value2 is not None
                                                       else "") + f" (width {c.width})"
                        for c in checks)
    return f"the checks on args[{checks[0].index}] contradict each other: {text}"


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.level == "error" for f in findings)
