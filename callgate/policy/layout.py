"""Syscall dispatch: merge numbers with identical code into ranges, find the range by JGE tree.

The 2**32 possible ``nr`` values are cut into maximal ranges whose code is the same
DAG node (hash-consing makes "same code" an integer comparison), so an allow-list
of 350 syscalls is a few dozen ranges. A binary tree of ``A >= start`` tests finds
the range (Kafel's and Chromium's bpf_dsl approach). The tree is balanced by how
many of the arch's real syscall numbers each side holds, which minimises the path
for real calls: a range that no real syscall falls in costs the same as one deep
leaf, not half the tree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping

from callgate.bpf.seccomp_data import U32_MASK
from callgate.policy.program import Node, ProgramBuilder


def merge_ranges(
    codes: Mapping[int, Node], default: Node, tail: tuple[int, Node] | None = None
) -> list[tuple[int, Node]]:
    """``(start, node)`` pairs, sorted: range i covers ``start_i`` up to ``start_{i+1} - 1``.

    The first range starts at 0 and the last runs to ``0xffffffff``; numbers absent
    from ``codes`` get ``default``; neighbours with the same node are merged. A
    ``tail`` ``(start, node)`` gives every number from ``start`` on to ``node``,
    overriding ``codes``.
    """
    ranges: list[tuple[int, Node]] = [(0, default)]
    points = [p for nr in sorted(codes) for p in ((nr, codes[nr]), (nr + 1, default))]
    if tail is not None:
        points = [p for p in points if p[0] < tail[0]] + [tail]
    for start, node in points:
        if start > U32_MASK:
            break
        if ranges[-1][0] == start:
            ranges.pop()
        if not ranges or ranges[-1][1] != node:
            ranges.append((start, node))
    return ranges


def _weights(ranges: list[tuple[int, Node]], numbers: Iterable[int]) -> list[int]:
    """Per range: how many real syscall numbers it holds, scaled, plus one.

    The +1 keeps ranges without a real syscall balanced among themselves.
    """
    table = sorted(set(numbers))
    bounds = [start for start, _ in ranges] + [1 << 32]
    scale = len(ranges) + 1
    return [
        (bisect_left(table, bounds[i + 1]) - bisect_left(table, bounds[i])) * scale + 1
        for i in range(len(ranges))
    ]


def search_tree(b: ProgramBuilder, ranges: list[tuple[int, Node]], numbers: Iterable[int]) -> Node:
    """A JGE tree over ``ranges`` (A holds ``nr``), weighted by the real ``numbers``."""
    weights = _weights(ranges, numbers)
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)

    def subtree(lo: int, hi: int) -> Node:  # ranges lo..hi-1
        if hi - lo == 1:
            return ranges[lo][1]
        half = (prefix[lo] + prefix[hi]) / 2
        # The split k puts ranges lo..k-1 left; choose the k nearest to half the weight.
        k = bisect_left(prefix, half, lo + 1, hi)
        if k > lo + 1 and half - prefix[k - 1] <= prefix[k] - half:
            k -= 1
        k = min(max(k, lo + 1), hi - 1)
        return b.jge(ranges[k][0], subtree(k, hi), subtree(lo, k))

    return subtree(0, len(ranges))
