"""A label-free cBPF program builder: a hash-consed DAG of instructions, laid out at the end.

The compiler never computes a jump offset. It builds nodes bottom-up (a node names
the nodes it continues to), and :class:`ProgramBuilder` does the rest:

* **hash-consing**: asking twice for the same instruction with the same successors
  returns the same node, so identical blocks (the tail of two syscalls' rule chains,
  the ``return ALLOW`` of 300 syscalls) exist once;
* **folding**: a conditional jump whose targets are equal is its target, and a
  jump whose outcome is fixed by its constant (``A > 0xffffffff``) is the branch it
  always takes; a load whose value is never read is dropped;
* **known loads**: a load of the word ``A`` already holds on every path into it
  (the second check of ``a0 >= 1 AND a0 <= 2``, the next rule's check of the same
  fd after ``a0 == 1`` failed) is skipped: its predecessors jump past it;
* **layout**: nodes are ordered parents-first (jumps only go forward), and offsets
  are resolved in one backward pass. A jump farther than 255 goes through a ``JA``
  trampoline (32-bit offset) placed right after it, or, when it returns, to a copy
  of the one-instruction ``RET`` — no slower than the original.

The builder's invariant, which makes dropping loads safe: the accumulator ``A`` is
dead at the entry of every node that starts with a load or a return. Callers keep
it by never relying on ``A`` (or ``X``/scratch) across a node that reloads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from callgate.bpf.insn import Insn
from callgate.bpf.opcodes import (
    BPF_ABS,
    BPF_ALU,
    BPF_AND,
    BPF_JA,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JMP,
    BPF_JSET,
    BPF_K,
    BPF_LD,
    BPF_MAXINSNS,
    BPF_RET,
    BPF_W,
)
from callgate.bpf.seccomp_data import U32_MASK
from callgate.errors import CallgateError

MAX_JUMP = 0xFF

LD_W_ABS = BPF_LD | BPF_W | BPF_ABS
AND_K = BPF_ALU | BPF_AND | BPF_K
JEQ_K = BPF_JMP | BPF_JEQ | BPF_K
JGT_K = BPF_JMP | BPF_JGT | BPF_K
JGE_K = BPF_JMP | BPF_JGE | BPF_K
JSET_K = BPF_JMP | BPF_JSET | BPF_K
JA = BPF_JMP | BPF_JA
RET_K = BPF_RET | BPF_K


class PolicyCompileError(CallgateError, ValueError):
    """A policy that cannot become a valid seccomp program (too large, out-of-range value…)."""


Node = int


@dataclass(frozen=True, slots=True)
class _Op:
    """One DAG node: an instruction and the nodes it continues to."""

    code: int
    k: int
    succ: tuple[Node, ...]  # () for RET, (next,) for a statement, (jt, jf) for a jump


class ProgramBuilder:
    """Builds a hash-consed instruction DAG and lays it out as a verifier-clean program."""

    def __init__(self) -> None:
        self._ops: list[_Op] = []
        self._index: dict[_Op, Node] = {}

    def _node(self, op: _Op) -> Node:
        node = self._index.get(op)
        if node is None:
            node = self._index[op] = len(self._ops)
            self._ops.append(op)
        return node

    # -- constructors -------------------------------------------------------------------

    def ret(self, value: int) -> Node:
        return self._node(_Op(RET_K, value, ()))

    def load(self, offset: int, then: Node) -> Node:
        """``A = seccomp_data[offset]``, then ``then``; dropped when ``then`` ignores A."""
        if self._ignores_a(then):
            return then
        return self._node(_Op(LD_W_ABS, offset, (then,)))

    def and_k(self, mask: int, then: Node) -> Node:
        """``A &= mask``; a no-op mask of all ones is not emitted."""
        if mask == U32_MASK or self._ignores_a(then):
            return then
        return self._node(_Op(AND_K, mask, (then,)))

    def jeq(self, k: int, jt: Node, jf: Node) -> Node:
        return self._jump(JEQ_K, k, jt, jf)

    def jgt(self, k: int, jt: Node, jf: Node) -> Node:
        return jf if k == U32_MASK else self._jump(JGT_K, k, jt, jf)

    def jge(self, k: int, jt: Node, jf: Node) -> Node:
        return jt if k == 0 else self._jump(JGE_K, k, jt, jf)

    def jset(self, k: int, jt: Node, jf: Node) -> Node:
        return jf if k == 0 else self._jump(JSET_K, k, jt, jf)

    def _jump(self, code: int, k: int, jt: Node, jf: Node) -> Node:
        if jt == jf:
            return jt
        return self._node(_Op(code, k, (jt, jf)))

    def _ignores_a(self, node: Node) -> bool:
        code = self._ops[node].code
        return code in (RET_K, LD_W_ABS)

    # -- layout -------------------------------------------------------------------------

    def _known_loads(self, root: Node) -> dict[Node, Node]:
        """Loads of the word ``A`` holds on every path into them -> the node after them.

        A forward dataflow pass in topological order: what ``A`` holds at a node's entry
        is the offset of the word every predecessor leaves in it, or unknown where
        predecessors differ (only loads set ``A`` to a known word; ALU makes it unknown).
        Skipping such a load changes no path's ``A``, so no later decision.
        """
        unknown = -1
        entry: dict[Node, int] = {root: unknown}
        skip: dict[Node, Node] = {}
        for node in self._order(root, {}):
            op = self._ops[node]
            held = entry[node]
            if op.code == LD_W_ABS:
                if held == op.k:
                    skip[node] = op.succ[0]
                held = op.k
            elif op.code == AND_K:
                held = unknown
            for succ in op.succ:
                entry[succ] = held if entry.get(succ, held) == held else unknown
        return skip

    def _order(self, root: Node, skip: dict[Node, Node]) -> list[Node]:
        """Reverse postorder from ``root``: every node before all of its successors.

        Successors are pushed jt first, so a jump's ``jf`` and a statement's next node
        tend to come right after it and need no offset at all. ``skip`` maps nodes that
        are jumped past to the node taking their place.
        """
        postorder: list[Node] = []
        seen = {root}
        stack: list[tuple[Node, int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            succ = self._successors(node, skip)
            if i < len(succ):
                stack.append((node, i + 1))
                child = succ[i]
                if child not in seen:
                    seen.add(child)
                    stack.append((child, 0))
            else:
                postorder.append(node)
        postorder.reverse()
        return postorder

    def _successors(self, node: Node, skip: dict[Node, Node]) -> tuple[Node, ...]:
        return tuple(self._past(s, skip) for s in self._ops[node].succ)

    @staticmethod
    def _past(node: Node, skip: dict[Node, Node]) -> Node:
        while node in skip:
            node = skip[node]
        return node

    def build(self, root: Node) -> list[Insn]:
        """Lay the DAG under ``root`` out as a program; raise if it exceeds 4096 instructions.

        One backward pass: instructions are placed from the last to the first, so when
        a node is placed every instruction it can jump to already has its final
        distance from the end of the program.
        """
        backwards: list[Insn] = []  # the program, last instruction first
        # For each node, the position (counted from the end) of its nearest placed copy.
        nearest: dict[Node, int] = {}

        def distance(target: Node) -> int:
            return len(backwards) - nearest[target] - 1

        def reachable(target: Node) -> Node:
            """Make ``target`` reachable with a short jump from the next placed instruction."""
            if distance(target) > MAX_JUMP:
                op = self._ops[target]
                if op.code == RET_K:
                    backwards.append(Insn(RET_K, 0, 0, op.k))
                else:
                    backwards.append(Insn(JA, 0, 0, distance(target)))
                nearest[target] = len(backwards) - 1
            return target

        skip = self._known_loads(root)
        root = self._past(root, skip)
        for node in reversed(self._order(root, skip)):
            op = self._ops[node]
            succ = self._successors(node, skip)
            if op.code == RET_K:
                backwards.append(Insn(RET_K, 0, 0, op.k))
            elif len(succ) == 1:
                (nxt,) = succ
                if distance(nxt) != 0:
                    if self._ops[nxt].code == RET_K:
                        backwards.append(Insn(RET_K, 0, 0, self._ops[nxt].k))
                    else:
                        backwards.append(Insn(JA, 0, 0, distance(nxt)))
                backwards.append(Insn(op.code, 0, 0, op.k))
            else:
                jt, jf = succ
                reachable(jt)
                reachable(jf)
                if distance(jt) > MAX_JUMP:  # placing jf's helper pushed jt out of range
                    reachable(jt)
                backwards.append(Insn(op.code, distance(jt), distance(jf), op.k))
            nearest[node] = len(backwards) - 1
        if len(backwards) > BPF_MAXINSNS:
            raise PolicyCompileError(
                f"the compiled filter needs {len(backwards)} instructions, over the kernel's "
                f"limit of {BPF_MAXINSNS}; use fewer distinct argument checks, or split the "
                "policy into several filters"
            )
        backwards.reverse()
        return backwards
