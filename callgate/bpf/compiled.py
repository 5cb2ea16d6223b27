"""Compile a verified seccomp program into one Python function, once.

The gate hot path runs a filter on every call, so the filter becomes straight-line
Python source compiled with :func:`compile`: registers and scratch words are local
variables, ``seccomp_data`` fields are parameters, every conditional jump is an
``if``. Classic BPF jumps only go forward, so a program is a DAG and each path
through it can be written out as nested ``if`` blocks that all end in ``return``.

Inlining every path could grow exponentially when many branches meet again, and
Python refuses more than 100 levels of indentation. So a join point reached from
several places whose inlined code would be large, or a path that nests too deep,
becomes a *section*: code written once, later in the function, guarded by
``if b == pc:``. A path reaching it sets ``b = pc`` and breaks out of its own
section. Because jumps only go forward, sections written in program order are
passed through once, top to bottom, with no loop and no call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn, flow
from callgate.bpf.seccomp_data import OFF_ARCH, OFF_IP, OFF_IP_HI, OFF_NR, SECCOMP_DATA_SIZE
from callgate.bpf.verifier import CONDITIONAL_JUMPS, verify

# (nr, arch, ip, a0, a1, a2, a3, a4, a5) -> u32 filter result; nr as u32, ip and args 64-bit.
CompiledFilter = Callable[[int, int, int, int, int, int, int, int, int], int]

PARAMS = ("nr", "arch", "ip", "a0", "a1", "a2", "a3", "a4", "a5")
M32 = "0xFFFFFFFF"
# A join point whose inlined code is bigger than this is written once, as a section.
INLINE_LIMIT = 24
# Deeper paths continue in a section: Python's tokenizer stops at 100 indentation levels.
MAX_DEPTH = 40

# High words are masked too, so ip and args may also be given as signed i64 (as wasm has them).
_LOADS = {OFF_NR: "nr", OFF_ARCH: "arch", OFF_IP: f"ip & {M32}", OFF_IP_HI: f"ip >> 32 & {M32}"}
for _i in range(6):
    _LOADS[16 + 8 * _i] = f"a{_i} & {M32}"
    _LOADS[20 + 8 * _i] = f"a{_i} >> 32 & {M32}"

_ALU_K = {
    op.BPF_ADD: "A = (A + {v}) & " + M32,
    op.BPF_SUB: "A = (A - {v}) & " + M32,
    op.BPF_MUL: "A = (A * {v}) & " + M32,
    op.BPF_DIV: "A //= {v}",
    op.BPF_OR: "A |= {v}",
    op.BPF_AND: "A &= {v}",
    op.BPF_XOR: "A ^= {v}",
    op.BPF_LSH: "A = (A << {v}) & " + M32,
    op.BPF_RSH: "A >>= {v}",
}
# (taken, not taken) spellings of each condition.
_CONDITIONS = {
    op.BPF_JEQ: ("A == {v}", "A != {v}"),
    op.BPF_JGT: ("A > {v}", "A <= {v}"),
    op.BPF_JGE: ("A >= {v}", "A < {v}"),
    op.BPF_JSET: ("A & {v}", "not A & {v}"),
}


def _literal(k: int) -> str:
    """Constants in hex, as seccomp tools print them, so the source reads like the policy."""
    return str(k) if k < 10 else f"{k:#x}"


def _successors(insn: Insn, pc: int) -> tuple[int, ...]:
    return tuple(dict.fromkeys(line for _, line in flow(insn, pc)))


def _statement(insn: Insn) -> str:
    """Python for one non-jump, non-return instruction (DIV by X is handled by the caller)."""
    code, k = insn.code, insn.k
    cls = op.bpf_class(code)
    if cls in (op.BPF_LD, op.BPF_LDX):
        reg = "A" if cls == op.BPF_LD else "X"
        mode = op.bpf_mode(code)
        if mode == op.BPF_ABS:
            return f"{reg} = {_LOADS[k]}"
        if mode == op.BPF_MEM:
            return f"{reg} = m{k}"
        return f"{reg} = {SECCOMP_DATA_SIZE if mode == op.BPF_LEN else _literal(k)}"
    if cls == op.BPF_ST:
        return f"m{k} = A"
    if cls == op.BPF_STX:
        return f"m{k} = X"
    if cls == op.BPF_MISC:
        return "X = A" if op.bpf_miscop(code) == op.BPF_TAX else "A = X"
    operation = op.bpf_op(code)
    if operation == op.BPF_NEG:
        return f"A = -A & {M32}"
    if op.bpf_src(code) == op.BPF_X:
        shift = operation in (op.BPF_LSH, op.BPF_RSH)
        return _ALU_K[operation].format(v="(X & 31)" if shift else "X")
    return _ALU_K[operation].format(v=_literal(k))


class _Codegen:
    """Writes the source of one program: the entry code, then its sections in order."""

    def __init__(self, program: Sequence[Insn]):
        self.program = program
        self.cells = sorted(
            {i.k for i in program if i.code in (op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM)}
        )
        self.size = [0] * len(program)  # statements needed to inline the code from each pc
        self.outlined = self._choose_outlined()
        self.sections: set[int] = set()  # pcs some emitted code jumps to with ``b = pc``

    def _choose_outlined(self) -> set[int]:
        """Join points whose inlined code would exceed :data:`INLINE_LIMIT` statements."""
        preds = [0] * len(self.program)
        for pc, insn in enumerate(self.program):
            for succ in _successors(insn, pc):
                preds[succ] += 1
        outlined: set[int] = set()
        size = self.size
        for pc in reversed(range(len(self.program))):
            succs = _successors(self.program[pc], pc)
            size[pc] = 1 + sum(1 if s in outlined else size[s] for s in succs)
            if preds[pc] > 1 and size[pc] > INLINE_LIMIT:
                outlined.add(pc)
        return outlined

    def _inline_size(self, pc: int) -> int:
        return 1 if pc in self.outlined else self.size[pc]

    def source(self) -> str:
        head = [f"def run({', '.join(PARAMS)}):", "    A = X = 0"]
        if self.cells:
            head.append("    " + " = ".join(f"m{c}" for c in self.cells) + " = 0")
        entry: list[str] = []
        self._emit(0, 2, entry, start=0)
        if not self.sections:  # nothing breaks out: drop the ``while True:`` wrapper
            return "\n".join([*head, *(line[4:] for line in entry), ""])
        lines = [*head, "    b = -1", "    while True:", *entry]
        done: set[int] = set()
        while self.sections - done:  # emitting a section may add later ones
            pc = min(self.sections - done)
            done.add(pc)
            lines += [f"    if b == {pc}:", "        while True:"]
            self._emit(pc, 3, lines, start=pc)
        return "\n".join([*lines, ""])

    def _emit(self, pc: int, depth: int, lines: list[str], start: int | None) -> None:
        """Write the code that runs from ``pc`` to a return or a section, at ``depth``."""
        pad = "    " * depth
        while True:
            if pc != start and (pc in self.outlined or depth > MAX_DEPTH):
                self.sections.add(pc)
                lines.append(f"{pad}b = {pc}")
                lines.append(f"{pad}break")
                return
            start = None
            insn = self.program[pc]
            code = insn.code
            if code == op.BPF_RET | op.BPF_K:
                lines.append(f"{pad}return {_literal(insn.k)}")
                return
            if code == op.BPF_RET | op.BPF_A:
                lines.append(f"{pad}return A")
                return
            if code == op.BPF_JMP | op.BPF_JA:
                pc += 1 + insn.k
                continue
            if code in CONDITIONAL_JUMPS:
                taken, not_taken = pc + 1 + insn.jt, pc + 1 + insn.jf
                if taken == not_taken:
                    pc = taken
                    continue
                operand = "X" if op.bpf_src(code) == op.BPF_X else _literal(insn.k)
                positive, negative = _CONDITIONS[op.bpf_op(code)]
                # The smaller branch goes inside the if, so nesting grows slowly.
                inner, outer, test = not_taken, taken, negative
                if self._inline_size(taken) < self._inline_size(not_taken):
                    inner, outer, test = taken, not_taken, positive
                lines.append(f"{pad}if {test.format(v=operand)}:")
                self._emit(inner, depth + 1, lines, start=None)
                pc = outer
                continue
            if code == op.BPF_ALU | op.BPF_DIV | op.BPF_X:
                lines.append(f"{pad}if not X:")
                lines.append(f"{pad}    return 0")
            lines.append(pad + _statement(insn))
            pc += 1


def compile_source(program: Sequence[Insn]) -> str:
    """The Python source :func:`compile_program` compiles (for inspection and docs)."""
    verify(program)
    # Plain ints only go into the source: an int subclass could format itself as code.
    plain = [Insn(*map(operator.index, insn)) for insn in program]
    return _Codegen(plain).source()


def compile_program(program: Sequence[Insn]) -> CompiledFilter:
    """Verify ``program`` and return a function computing its result.

    The function takes ``(nr, arch, ip, a0, a1, a2, a3, a4, a5)``: ``nr`` and
    ``arch`` as u32, ``ip`` and the args as u64 or i64 (the same 64 bits either
    way), and returns the filter's u32 result.
    """
    namespace: dict[str, object] = {}
    exec(compile(compile_source(program), "<callgate-bpf>", "exec"), namespace)
    return namespace["run"]  # type: ignore[return-value]  # exec'd: run is a CompiledFilter
