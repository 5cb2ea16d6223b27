"""Exact reasoning about argument checks: can they hold together, does one imply another?

The lint needs "this rule can never match" and "every call rule B matches, rule A
matches too" to be *right*, not heuristics. Checks on different argument indexes
are independent, so everything reduces to one 64-bit value ``v`` and a
conjunction of atoms:

* an interval on ``v`` (width-64 ``eq lt le gt ge``) or on its low word (width 32);
* fixed bits (``masked_eq``: ``v & mask == value2``);
* excluded points (``ne``), on ``v`` or on its low word.

:func:`satisfiable` decides such a conjunction exactly by constructing the
smallest value that meets it, which also gives a witness for tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callgate.policy.model import ArgCheck, Op

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Atom:
    """One constraint on the value (``low`` = on its low 32 bits only)."""

    kind: str  # "range", "fixed" or "not"
    low: bool
    a: int
    b: int = 0


def atoms_of(check: ArgCheck) -> list[Atom] | None:
    """The atoms equivalent to ``check``; None when it can never hold."""
    low = check.width == 32
    top = U32 if low else U64
    value = check.value
    match check.op:
        case Op.EQ:
            return [Atom("range", low, value, value)]
        case Op.NE:
            return [Atom("not", low, value)]
        case Op.LT:
            return None if value == 0 else [Atom("range", low, 0, value - 1)]
        case Op.LE:
            return [Atom("range", low, 0, value)]
        case Op.GT:
            return None if value >= top else [Atom("range", low, value + 1, top)]
        case Op.GE:
            return [Atom("range", low, value, top)]
        case Op.MASKED_EQ:
            datum = check.value2 or 0
            if datum & ~value:
                return None
            return [Atom("fixed", False, value, datum)]
    raise ValueError(f"unknown op {check.op!r}")


def negations_of(check: ArgCheck) -> list[list[Atom]]:
    """``not check`` as a disjunction of conjunctions (each inner list is one alternative)."""
    low = check.width == 32
    top = U32 if low else U64
    value = check.value
    match check.op:
        case Op.EQ:
            return [[Atom("not", low, value)]]
        case Op.NE:
            return [[Atom("range", low, value, value)]]
        case Op.LT:
            return [[Atom("range", low, value, top)]]
        case Op.LE:
            return [] if value >= top else [[Atom("range", low, value + 1, top)]]
        case Op.GT:
            return [[Atom("range", low, 0, value)]]
        case Op.GE:
            return [] if value == 0 else [[Atom("range", low, 0, value - 1)]]
        case Op.MASKED_EQ:
            datum = check.value2 or 0
            if datum & ~value:
                return [[]]  # never holds, so its negation always does
            return [[Atom("fixed", False, 1 << bit, ~datum & (1 << bit))]
                    for bit in range(64) if value >> bit & 1]
    raise ValueError(f"unknown op {check.op!r}")


def witness(atoms: Iterable[Atom]) -> int | None:
    """The smallest 64-bit value meeting every atom, or None if there is none."""
    lo, hi, lo32, hi32 = 0, U64, 0, U32
    mask = bits = 0
    excluded: set[int] = set()
    excluded32: set[int] = set()
    for atom in atoms:
        if atom.kind == "range":
            if atom.low:
                lo32, hi32 = max(lo32, atom.a), min(hi32, atom.b)
            else:
                lo, hi = max(lo, atom.a), min(hi, atom.b)
        elif atom.kind == "fixed":
            if (bits ^ atom.b) & mask & atom.a:
                return None
            mask, bits = mask | atom.a, bits | atom.b
        else:
            (excluded32 if atom.low else excluded).add(atom.a)
    if lo > hi or lo32 > hi32:
        return None
    low_ranges = _minus_points(lo32, hi32, excluded32)
    x = lo
    for _ in range(len(excluded) + 1):
        v = _next_value(x, mask, bits, low_ranges)
        if v is None or v > hi:
            return None
        if v not in excluded:
            return v
        x = v + 1
    return None


def satisfiable(atoms: Iterable[Atom]) -> bool:
    return witness(atoms) is not None


def checks_satisfiable(checks: Sequence[ArgCheck]) -> bool:
    """Whether some argument values make every check hold at once."""
    return not unsatisfiable_indexes(checks)


def unsatisfiable_indexes(checks: Sequence[ArgCheck]) -> list[int]:
    """The argument indexes whose checks contradict each other (sorted)."""
    return sorted(i for i, group in _grouped(checks).items()
                  if group is None or not satisfiable(group))


def implies(premise: Sequence[ArgCheck], conclusion: Sequence[ArgCheck]) -> bool:
    """Whether every argument tuple meeting ``premise`` also meets ``conclusion``."""
    groups = _grouped(premise)
    if None in groups.values() or not all(satisfiable(g or []) for g in groups.values()):
        return True  # an impossible premise implies anything
    for check in conclusion:
        base = groups.get(check.index) or []
        for alternative in negations_of(check):
            if satisfiable([*base, *alternative]):
                return False
    return True


def overlap(first: Sequence[ArgCheck], second: Sequence[ArgCheck]) -> bool:
    """Whether some argument tuple meets both sets of checks."""
    return checks_satisfiable([*first, *second])


def _grouped(checks: Sequence[ArgCheck]) -> dict[int, list[Atom] | None]:
    groups: dict[int, list[Atom] | None] = {}
    for check in checks:
        atoms = atoms_of(check)
        current = groups.get(check.index, [])
        groups[check.index] = None if atoms is None or current is None else [*current, *atoms]
    return groups


def _minus_points(lo: int, hi: int, points: set[int]) -> list[tuple[int, int]]:
    """[lo, hi] without ``points``, as sorted disjoint intervals."""
    out = []
    start = lo
    for p in sorted(p for p in points if lo <= p <= hi):
        if p > start:
            out.append((start, p - 1))
        start = p + 1
    if start <= hi:
        out.append((start, hi))
    return out


def _next_match(y: int, mask: int, bits: int, width: int) -> int | None:
    """The smallest ``v >= y`` below ``2**width`` with ``v & mask == bits``."""
    if y >> width:
        return None
    if y & mask == bits:
        return y
    for i in range(width):
        above = ~((1 << (i + 1)) - 1)
        if y >> i & 1 or (y & above & mask) != (bits & above & mask):
            continue
        if mask >> i & 1 and not bits >> i & 1:
            continue
        return (y & above) | (1 << i) | (bits & ((1 << i) - 1))
    return None


def _next_low(y: int, mask: int, bits: int, ranges: list[tuple[int, int]]) -> int | None:
    for a, b in ranges:
        if b < y:
            continue
        v = _next_match(max(a, y), mask, bits, 32)
        if v is not None and v <= b:
            return v
    return None


def _next_value(x: int, mask: int, bits: int, low_ranges: list[tuple[int, int]]) -> int | None:
    """The smallest ``v >= x`` with the fixed bits and a low word inside ``low_ranges``."""
    if x > U64:
        return None
    mask_hi, bits_hi = mask >> 32, bits >> 32
    mask_lo, bits_lo = mask & U32, bits & U32
    high = x >> 32
    if high & mask_hi == bits_hi:
        low = _next_low(x & U32, mask_lo, bits_lo, low_ranges)
        if low is not None:
            return high << 32 | low
    next_high = _next_match(high + 1, mask_hi, bits_hi, 32)
    if next_high is None:
        return None
    low = _next_low(0, mask_lo, bits_lo, low_ranges)
    return None if low is None else next_high << 32 | low
