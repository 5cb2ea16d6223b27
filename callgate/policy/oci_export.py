"""A ``[kernel]`` section as an OCI/runc seccomp profile that decides every call the same way.

callgate's meaning - the most restrictive matching rule wins - is not runc's: libseccomp
under runc lets an unconditional rule replace conditional ones of another action, reads
two checks on one argument in one entry as OR, and refuses a rule with the default's
action (docs/policy.md, "Where runc is not a plain AND"). A profile that writes the
section's rules out one for one can therefore mean something else. So the export
rewrites each syscall's rules until no two entries of different actions can match the
same call:

* actions are taken from the most restrictive down; each rule is emitted *minus* every
  rule of a more restrictive action (``R and not M``, spelled out as alternatives:
  ``eq`` <-> ``ne``, ``lt`` <-> ``ge``, ``le`` <-> ``gt``, and a ``masked_eq`` by the
  other values of its mask bits);
* rules with the default's action are not written (runc would drop them), only
  subtracted from the weaker ones;
* one entry never tests an argument twice: checks on one argument that imply one
  another are reduced to the stronger, two ``masked_eq`` merge into one; anything else
  is refused, as is a check no profile can spell (an ordering of the low 32 bits on a
  64-bit arch, ``trap`` with data).

Where the export cannot keep the meaning it raises :class:`OciExportError` saying
which rule and why; where a profile cannot say something that only matters for calls
from another architecture, it returns a note (``notes``) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from callgate.arch import Arch
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    action_of,
    data_of,
    format_action,
)
from callgate.errors import CallgateError
from callgate.policy.argspace import checks_satisfiable, implies
from callgate.policy.model import ArgCheck, Op, Section
from callgate.policy.oci import ARCH_NAMES, BAD_ARCH_ACTION, ENOSYS_RET
from callgate.policy.reference import decision_order, mismatch_action

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
# More alternatives than this for one syscall and the profile stops being readable.
MAX_TERMS = 64
# A masked_eq is negated by the other values of its mask: at most 2**6 - 1 of them.
MAX_NEGATED_MASK_BITS = 6

_ACTION_NAMES = {
    SECCOMP_RET_KILL_PROCESS: "SCMP_ACT_KILL_PROCESS",
    SECCOMP_RET_KILL_THREAD: "SCMP_ACT_KILL_THREAD",
    SECCOMP_RET_TRAP: "SCMP_ACT_TRAP",
    SECCOMP_RET_ERRNO: "SCMP_ACT_ERRNO",
    SECCOMP_RET_USER_NOTIF: "SCMP_ACT_NOTIFY",
    SECCOMP_RET_TRACE: "SCMP_ACT_TRACE",
    SECCOMP_RET_LOG: "SCMP_ACT_LOG",
    SECCOMP_RET_ALLOW: "SCMP_ACT_ALLOW",
}
_OP_NAMES = {Op.EQ: "SCMP_CMP_EQ", Op.NE: "SCMP_CMP_NE", Op.LT: "SCMP_CMP_LT",
             Op.LE: "SCMP_CMP_LE", Op.GT: "SCMP_CMP_GT", Op.GE: "SCMP_CMP_GE",
             Op.MASKED_EQ: "SCMP_CMP_MASKED_EQ"}
_NEGATED = {Op.EQ: Op.NE, Op.NE: Op.EQ, Op.LT: Op.GE, Op.GE: Op.LT, Op.LE: Op.GT,
            Op.GT: Op.LE}

Term = tuple[ArgCheck, ...]  # checks ANDed; () matches every call
# Defaults under which runc adds no -ENOSYS stub.
_PERMISSIVE = (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG, SECCOMP_RET_TRACE)


class OciExportError(CallgateError, ValueError):
    """A section no OCI profile can express with the same meaning."""


@dataclass
class OciExport:
    """The profile (a JSON-ready dict) and what it could not carry over."""

    profile: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def export_oci(section: Section, arch: Arch, flags: Sequence[str] = ()) -> OciExport:
    """``section`` (a kernel section, for ``arch``) as an OCI seccomp profile for runc."""
    if arch.name not in ARCH_NAMES:
        raise OciExportError(f"an OCI profile is a kernel filter for one of "
                             f"{', '.join(ARCH_NAMES)}; {arch.name} is not one")
    exporter = _Exporter(section, arch)
    default_name, default_errno = exporter.action(section.default, "the default")
    profile: dict[str, Any] = {"defaultAction": default_name}
    if default_errno is not None:
        profile["defaultErrnoRet"] = default_errno
    entries = exporter.entries()
    if section.enosys_above is not None and section.default != ENOSYS_RET:
        if action_of(section.default) in _PERMISSIVE or section.enosys_above == 0:
            raise OciExportError(
                f"enosys_above {section.enosys_above} with the default "
                f"{format_action(section.default)}: runc adds its -ENOSYS stub only above a "
                "syscall some entry names, and only when the default refuses")
        # runc's -ENOSYS stub: on when the target is listed, above the largest number any
        # entry names. An entry with the default's action still counts, and runc drops it.
        profile["architectures"] = [ARCH_NAMES[arch.name][0]]
        if max((arch.numbers[n] for e in entries for n in e["names"]), default=-1) \
                < section.enosys_above:
            name = arch.name_of(section.enosys_above)
            if name is None:
                raise OciExportError(f"enosys_above {section.enosys_above} is no syscall of "
                                     f"{arch.name}, so no entry can make runc's stub start there")
            entries.append(_entry([name], default_name, default_errno, ()))
    profile["flags"] = list(flags)  # no key at all would mean SPEC_ALLOW to runc
    profile["syscalls"] = entries
    notes = list(exporter.notes)
    mismatch = mismatch_action(section)
    if mismatch != BAD_ARCH_ACTION:
        notes.append(f"calls from another architecture (and x32 calls) get "
                     f"{format_action(BAD_ARCH_ACTION)} (SCMP_ACT_KILL_THREAD) under runc, "
                     f"libseccomp's bad-arch action; a profile cannot say "
                     f"{format_action(mismatch)}, this section's")
    return OciExport(profile, notes)


class _Exporter:
    def __init__(self, section: Section, arch: Arch) -> None:
        self.section = section
        self.arch = arch
        self.notes: list[str] = []

    def action(self, value: int, what: str) -> tuple[str, int | None]:
        kind, data = action_of(value), data_of(value)
        name = _ACTION_NAMES.get(kind)
        if name is None:
            raise OciExportError(f"{what}: {format_action(value)} has no SCMP_ACT_ name")
        if kind in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE):
            return name, data
        if data:
            raise OciExportError(f"{what}: {format_action(value)} carries data "
                                 f"({data}), which {name} cannot")
        return name, None

    def entries(self) -> list[dict[str, Any]]:
        per_name: dict[str, list[tuple[int, Term, int]]] = {}
        # Above enosys_above every call gets ENOSYS whatever the rules say (runc's stub).
        top = self.section.enosys_above
        for i, rule in enumerate(self.section.rules):
            for name in rule.names:
                if name in self.arch.numbers and (top is None or self.arch.numbers[name] <= top):
                    per_name.setdefault(name, []).append((rule.action, tuple(rule.args), i))
        grouped: dict[tuple[str, int | None, Term], list[str]] = {}
        for name in sorted(per_name, key=self.arch.numbers.__getitem__):
            for action, term in self._syscall(name, per_name[name]):
                act_name, errno = self.action(action, f"rule for {name}")
                grouped.setdefault((act_name, errno, term), []).append(name)
        return [_entry(names, act, errno, term) for (act, errno, term), names in grouped.items()]

    def _syscall(self, name: str, rules: list[tuple[int, Term, int]]) -> list[tuple[int, Term]]:
        """``name``'s rules rewritten so that entries of different actions never overlap."""
        out: list[tuple[int, Term]] = []
        stronger: list[tuple[Term, int]] = []
        for action in sorted({a for a, _, _ in rules}, key=decision_order):
            terms = [(t, i) for a, t, i in rules if a == action]
            if any(not t for t, _ in terms):
                terms = [((), next(i for t, i in terms if not t))]
            if action != self.section.default:
                for term, i in terms:
                    where = f"{name} (kernel.rules[{i}])"
                    emitted = [self._simplified(term, where)]
                    for cover, j in stronger:
                        emitted = self._minus(emitted, cover, where, j)
                    out += [(action, t) for t in emitted if t is not None]
            stronger += terms
        self._note_libseccomp_nesting(name, [t for _, t in out])
        return out

    def _minus(self, terms: list[Term | None], cover: Term, where: str,
               j: int) -> list[Term | None]:
        """``terms`` and not ``cover``: each term once per way ``cover`` can fail."""
        if not cover:
            return []
        out: list[Term | None] = []
        for term in terms:
            if term is None:
                continue
            for check in cover:
                for alternative in self._negations(check, f"{where}, less kernel.rules[{j}]"):
                    simplified = self._simplified((*term, *alternative),
                                                  f"{where}, less kernel.rules[{j}]")
                    if simplified is not None and simplified not in out:
                        out.append(simplified)
            if len(out) > MAX_TERMS:
                raise OciExportError(f"{where}: more than {MAX_TERMS} entries would be needed "
                                     "to keep the stronger rules' exceptions apart")
        return out

    def _negations(self, check: ArgCheck, where: str) -> list[Term]:
        """Ways ``check`` fails, each a term (``()``: it always fails)."""
        if check.op is not Op.MASKED_EQ:  # negated at its own width: a low-word ne is an eq
            negated = ArgCheck(check.index, _NEGATED[check.op], check.value, None, check.width)
            return [(self._native(negated, where),)]
        check = self._native(check, where)
        mask, datum = check.value, check.value2 or 0
        if datum & ~mask:
            return [()]  # it never holds
        bits = [1 << b for b in range(64) if mask >> b & 1]
        if len(bits) > MAX_NEGATED_MASK_BITS:
            raise OciExportError(f"{where}: to exclude args[{check.index}] & {mask:#x} == "
                                 f"{datum:#x} a profile needs one entry per other value of "
                                 f"those {len(bits)} bits")
        others: list[Term] = []
        for n in range(1 << len(bits)):
            value = sum(bit for k, bit in enumerate(bits) if n >> k & 1)
            if value != datum:
                others.append((ArgCheck(check.index, Op.MASKED_EQ, mask, value, 64),))
        return others

    def _native(self, check: ArgCheck, where: str) -> ArgCheck:
        """``check`` as the profile's comparison spells it (:class:`OciExportError` when
        no profile can)."""
        if self.arch.arg_bits == 32:
            if check.value > U32 or (check.value2 or 0) > U32:
                raise OciExportError(f"{where}: args[{check.index}] is compared with a value "
                                     f"over 32 bits; libseccomp compares {self.arch.name}'s "
                                     "arguments as 32-bit values")
            return ArgCheck(check.index, check.op, check.value, check.value2, 64)
        if check.width == 64:
            return check
        if check.op is Op.EQ:
            return ArgCheck(check.index, Op.MASKED_EQ, U32, check.value, 64)
        if check.op is Op.MASKED_EQ:
            return ArgCheck(check.index, Op.MASKED_EQ, check.value & U32, check.value2, 64)
        raise OciExportError(f"{where}: args[{check.index}] {check.op.value} {check.value:#x} "
                             f"on the low 32 bits; a profile compares all 64 bits on "
                             f"{self.arch.name}, and has no low-word '{check.op.value}'")

    def _simplified(self, term: Term, where: str) -> Term | None:
        """``term`` with one check per argument (None: it can never hold)."""
        by_index: dict[int, list[ArgCheck]] = {}
        for check in term:
            native = self._native(check, where)
            if native not in by_index.setdefault(native.index, []):
                by_index[native.index].append(native)
        out: list[ArgCheck] = []
        for index in sorted(by_index):
            checks = by_index[index]
            if not checks_satisfiable(checks):
                return None
            checks = _strongest(checks)
            if len(checks) > 1:
                merged = _merged_masks(checks)
                if merged is None:
                    shown = " and ".join(f"{c.op.value} {c.value:#x}" for c in checks)
                    raise OciExportError(f"{where}: one entry would test args[{index}] "
                                         f"twice ({shown}); runc reads two checks on one "
                                         "argument as OR")
                checks = [merged]
            out += checks
        return tuple(out)

    def _note_libseccomp_nesting(self, name: str, terms: list[Term]) -> None:
        """Several entries testing one argument are safe with libseccomp 2.5.4 when every
        test is a plain ``eq``, or a ``masked_eq`` with one same mask (tests cannot both
        hold); otherwise it may nest them wrongly (tests/policy/libseccomp_oracle.py)."""
        tested: dict[int, set[tuple[Op, int]]] = {}
        counts: dict[int, int] = {}
        for term in terms:
            for check in term:
                kind = (check.op, check.value if check.op is Op.MASKED_EQ else 0)
                tested.setdefault(check.index, set()).add(kind)
                counts[check.index] = counts.get(check.index, 0) + 1
        def safe(kinds: set[tuple[Op, int]]) -> bool:
            return len(kinds) == 1 and next(iter(kinds))[0] in (Op.EQ, Op.MASKED_EQ)

        risky = [i for i, n in counts.items() if n > 1 and not safe(tested[i])]
        if risky:
            self.notes.append(f"{name}: {counts[risky[0]]} entries test args[{risky[0]}] with "
                              "more than plain eq; libseccomp 2.5.4 may nest them and answer "
                              "some calls with the default (tests/policy/libseccomp_oracle.py)")


def _strongest(checks: list[ArgCheck]) -> list[ArgCheck]:
    """Drop every check the others imply."""
    kept = list(checks)
    for check in list(kept):
        rest = [c for c in kept if c is not check]
        if rest and implies(rest, [check]):
            kept = rest
    return kept


def _merged_masks(checks: list[ArgCheck]) -> ArgCheck | None:
    """Several ``masked_eq`` on one argument as one, when they can be."""
    if any(c.op is not Op.MASKED_EQ for c in checks):
        return None
    mask = datum = 0
    for c in checks:
        mask, datum = mask | c.value, datum | (c.value2 or 0)
    return ArgCheck(checks[0].index, Op.MASKED_EQ, mask, datum, 64)


def _entry(names: list[str], action: str, errno: int | None, term: Term) -> dict[str, Any]:
    entry: dict[str, Any] = {"names": names, "action": action}
    if errno is not None:
        entry["errnoRet"] = errno
    if term:
        entry["args"] = [{"index": c.index, "value": c.value,
                          "valueTwo": c.value2 if c.op is Op.MASKED_EQ else 0,
                          "op": _OP_NAMES[c.op]} for c in term]
    return entry
