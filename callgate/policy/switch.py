"""Runs of equality checks on one argument, compiled as a binary search instead of a chain.

A syscall's rules are a first-match list (:mod:`callgate.policy.plan`). Written out
one after the other, 100 rules that each pin ``args[0]`` to a different value are
100 tests deep for a value none of them names. But rules pinning the same argument
to *different* values can never both match, so their order among themselves does
not matter: only the rules pinning the value the call actually has are tried, in
their order, and the call falls through to whatever follows the run when none
matches. So a run of consecutive rules that each have an ``eq`` check on one
``(index, width)`` becomes a **switch**:

* the values, sorted, each with the code of its own rules (the ``eq`` check dropped,
  the other checks kept, falling through to what follows the run); neighbouring
  values with the same code merge into one interval (hash-consing makes "the same
  code" an integer comparison), so an allow-list of 0..99 is one range test;
* a balanced tree of ``A >= start`` tests over the intervals, as the syscall
  dispatch does (Kafel's and Chromium's bpf_dsl's JGE trees), with a short chain of
  up to :data:`LEAF` tests at each leaf; bounds the tree has already established
  are not tested again;
* a 64-bit value is split into words exactly as :mod:`callgate.policy.argcmp` does:
  a tree over the distinct high words leads to a tree over the low words of the
  values sharing that high word. (Usually every value's high word is 0, and the
  first tree is one ``A == 0``.)

Nothing else changes meaning: precedence stays the first-match order, and within a
block of equal actions (where order is free) the rules of the run are gathered
together first, so interleaved rules of another shape do not cut it. Runs with fewer
than :data:`MIN_VALUES` values stay chains: they are no longer that way, and their
listing reads like the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from callgate.bpf.seccomp_data import U32_MASK, arg_hi, arg_lo
from callgate.policy.model import Op
from callgate.policy.plan import Branch
from callgate.policy.program import Node, ProgramBuilder

# A run needs this many distinct values to become a switch.
MIN_VALUES = 4
# A subtree of at most this many intervals is a chain of tests: no longer than more
# tree levels for a miss, shorter for a hit.
LEAF = 3

Key = tuple[int, int]  # (arg index, width)
# Per value, the code to run: (first, last, node), sorted and disjoint.
Intervals = list[tuple[int, int, Node]]


@dataclass(frozen=True, slots=True)
class Switch:
    """A run of branches that all pin ``key`` with ``eq``, grouped by the pinned value.

    ``cases[v]`` are the run's branches pinning ``v``, in first-match order, each with
    that ``eq`` check removed. Branches pinning two different values (which can never
    match) are in no case.
    """

    key: Key
    cases: dict[int, tuple[Branch, ...]]


Part = Branch | Switch


def _pins(branch: Branch) -> dict[Key, set[int]]:
    """Per ``(index, width)``: the values ``branch``'s ``eq`` checks pin it to."""
    out: dict[Key, set[int]] = {}
    for check in branch.checks:
        if Op(check.op) is Op.EQ:
            out.setdefault((check.index, check.width), set()).add(check.value)
    return out


def _best_key(branches: Sequence[Branch]) -> tuple[Key | None, int]:
    """The key the most distinct values are pinned to, and how many."""
    values: dict[Key, set[int]] = {}
    for branch in branches:
        for key, pinned in _pins(branch).items():
            if len(pinned) == 1:
                values.setdefault(key, set()).update(pinned)
    if not values:
        return None, 0
    key = max(sorted(values), key=lambda k: len(values[k]))
    return key, len(values[key])


def _gathered(branches: Sequence[Branch]) -> list[Branch]:
    """Within each block of equal actions, the branches pinning its best key first.

    Any order of equal actions decides the same, so this changes no verdict; it keeps
    rules of another shape from cutting a run in two. Blocks whose best key has fewer
    than :data:`MIN_VALUES` values keep their order.
    """
    out: list[Branch] = []
    i = 0
    while i < len(branches):
        j = i
        while j < len(branches) and branches[j].action == branches[i].action:
            j += 1
        block = list(branches[i:j])
        key, count = _best_key(block)
        if key is not None and count >= MIN_VALUES:
            pinning = [br for br in block if key in _pins(br)]
            block = pinning + [br for br in block if key not in _pins(br)]
        out += block
        i = j
    return out


def _switch(run: Sequence[Branch], key: Key) -> Switch:
    cases: dict[int, list[Branch]] = {}
    for branch in run:
        pinned = _pins(branch)[key]
        if len(pinned) != 1:
            continue  # eq to two values at once: never matches
        (value,) = pinned
        rest = tuple(c for c in branch.checks
                     if not (Op(c.op) is Op.EQ and (c.index, c.width) == key))
        cases.setdefault(value, []).append(Branch(branch.action, rest))
    return Switch(key, {v: tuple(bs) for v, bs in sorted(cases.items())})


def split_runs(branches: Sequence[Branch]) -> list[Part]:
    """``branches`` (first-match order) as single branches and switches, in decision order."""
    branches = _gathered(branches)
    parts: list[Part] = []
    # key -> where its run from an earlier position ended with too few values: a run
    # starting later, before that end, is part of it and has no more values.
    exhausted: dict[Key, int] = {}
    i = 0
    while i < len(branches):
        best: tuple[int, Key] | None = None
        for key in sorted(_pins(branches[i])):
            if exhausted.get(key, -1) > i:
                continue
            j, values = i, set()
            while j < len(branches) and key in (pins := _pins(branches[j])):
                if len(pins[key]) == 1:
                    values |= pins[key]
                j += 1
            if len(values) < MIN_VALUES:
                exhausted[key] = j
            elif best is None or j > best[0]:
                best = (j, key)
        if best is None:
            parts.append(branches[i])
            i += 1
        else:
            end, key = best
            parts.append(_switch(branches[i:end], key))
            i = end
    return parts


def emit_switch(b: ProgramBuilder, switch: Switch,
                case_code: Callable[[tuple[Branch, ...], Node], Node], miss: Node) -> Node:
    """The search for ``switch``: each value's ``case_code(branches, miss)``, else ``miss``."""
    index, width = switch.key
    targets = {v: case_code(branches, miss) for v, branches in switch.cases.items()}
    low = arg_lo(index)
    if width == 32:
        return b.load(low, _tree(b, _intervals(targets, miss), 0, U32_MASK, miss))
    by_high: dict[int, dict[int, Node]] = {}
    for value, target in targets.items():
        by_high.setdefault(value >> 32, {})[value & U32_MASK] = target
    highs = {
        high: b.load(low, _tree(b, _intervals(lows, miss), 0, U32_MASK, miss))
        for high, lows in by_high.items()
    }
    return b.load(arg_hi(index), _tree(b, _intervals(highs, miss), 0, U32_MASK, miss))


def _intervals(targets: dict[int, Node], miss: Node) -> Intervals:
    """Sorted ``(first, last, node)``: consecutive values with the same node merged."""
    out: Intervals = []
    for value in sorted(targets):
        node = targets[value]
        if node == miss:
            continue
        if out and out[-1][1] == value - 1 and out[-1][2] == node:
            out[-1] = (out[-1][0], value, node)
        else:
            out.append((value, value, node))
    return out


def _tree(b: ProgramBuilder, items: Intervals, lo: int, hi: int, miss: Node) -> Node:
    """Find ``A``'s interval among ``items``, knowing ``lo <= A <= hi``; else ``miss``."""
    if len(items) <= LEAF:
        node = miss
        for first, last, target in reversed(items):
            node = _test(b, first, last, lo, hi, target, node)
        return node
    middle = len(items) // 2
    split = items[middle][0]
    return b.jge(split, _tree(b, items[middle:], split, hi, miss),
                 _tree(b, items[:middle], lo, split - 1, miss))


def _test(b: ProgramBuilder, first: int, last: int, lo: int, hi: int, t: Node, f: Node) -> Node:
    """``t`` when ``first <= A <= last``, else ``f``; bounds ``lo``/``hi`` are known."""
    above, below = first > lo, last < hi
    if first == last and above and below:
        return b.jeq(first, t, f)
    if above and below:
        return b.jge(first, b.jgt(last, f, t), f)
    if above:
        return b.jge(first, t, f)
    if below:
        return b.jgt(last, f, t)
    return t
