"""Syscall dispatch: merge numbers with identical code into ranges, find the range by JGE tree.

The 2**32 possible ``nr`` values are cut into maximal ranges whose code is the same
DAG node (hash-consing makes "same code" an integer comparison), so an allow-list
of 350 syscalls is a few dozen ranges. A binary tree of ``A >= start`` tests finds
the range (Kafel's and Chromium's bpf_dsl approach). The tree is balanced by how
many of the arch's real syscall numbers each side holds, which minimises the path
for real calls: a range that no real syscall falls in costs the same as one deep
leaf, not half the tree. Up to 160 ranges the tree is the optimal one for that
weighting; beyond, a weight-balanced split (within a couple of tests of optimal).
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


# Up to this many ranges the tree is the optimal one (Knuth's O(n^2) dynamic program);
# beyond, where the table would grow quadratically, the weight-balanced split is used.
OPTIMAL_TREE_MAX_RANGES = 160


def _balanced_split(prefix: list[int], lo: int, hi: int) -> int:
    """The split k (ranges lo..k-1 go left) nearest to half the weight of lo..hi-1."""
    half = (prefix[lo] + prefix[hi]) / 2
    k = bisect_left(prefix, half, lo + 1, hi)
    if k > lo + 1 and half - prefix[k - 1] <= prefix[k] - half:
        k -= 1
    return min(max(k, lo + 1), hi - 1)


def _optimal_splits(prefix: list[int]) -> dict[tuple[int, int], int]:
    """Splits of the tree with least total weighted depth (an optimal alphabetic tree).

    cost(lo, hi) = min over k of cost(lo, k) + cost(k, hi), plus the weight of lo..hi-1
    (every leaf below one more test). Knuth's monotonicity bounds the best k between
    the best splits of the two intervals one shorter, which makes the table O(n^2).
    """
    n = len(prefix) - 1
    cost = [[0] * (n + 1) for _ in range(n + 1)]
    best = [[0] * (n + 1) for _ in range(n + 1)]
    for lo in range(n - 1):
        best[lo][lo + 2] = lo + 1
        cost[lo][lo + 2] = prefix[lo + 2] - prefix[lo]
    for length in range(3, n + 1):
        for lo in range(n - length + 1):
            hi = lo + length
            left, right = cost[lo], cost
            k_best, c_best = 0, None
            for k in range(best[lo][hi - 1], best[lo + 1][hi] + 1):
                c = left[k] + right[k][hi]
                if c_best is None or c < c_best:
                    k_best, c_best = k, c
            assert c_best is not None  # Knuth's bounds: the range of k is never empty
            best[lo][hi] = k_best
            cost[lo][hi] = c_best + prefix[hi] - prefix[lo]
    return {(lo, hi): best[lo][hi] for lo in range(n) for hi in range(lo + 2, n + 1)}


def search_tree(b: ProgramBuilder, ranges: list[tuple[int, Node]], numbers: Iterable[int]) -> Node:
    """A JGE tree over ``ranges`` (A holds ``nr``), weighted by the real ``numbers``."""
    prefix = [0]
    for w in _weights(ranges, numbers):
        prefix.append(prefix[-1] + w)
    optimal = _optimal_splits(prefix) if len(ranges) <= OPTIMAL_TREE_MAX_RANGES else None

    def subtree(lo: int, hi: int) -> Node:  # ranges lo..hi-1
        if hi - lo == 1:
            return ranges[lo][1]
        k = optimal[lo, hi] if optimal is not None else _balanced_split(prefix, lo, hi)
        return b.jge(ranges[k][0], subtree(k, hi), subtree(lo, k))

    return subtree(0, len(ranges))
