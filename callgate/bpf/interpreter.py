"""The reference interpreter: seccomp's classic BPF, one instruction at a time.

Written to be obviously right rather than fast; the compiled evaluator and the
kernel are tested against it. Semantics are those the kernel runs after
converting the filter to eBPF (``bpf_convert_filter``):

- A and X start at 0; all arithmetic wraps at 32 bits and is unsigned;
- ``A /= X`` with X == 0 ends the filter with return value 0 (KILL_THREAD);
- shifts by X use ``X & 31`` (eBPF ALU32 semantics);
- ``len`` is the size of ``seccomp_data``, 64;
- jumps compare unsigned; ``JSET`` tests ``A & operand != 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import SECCOMP_DATA_SIZE, U32_MASK, SeccompData
from callgate.bpf.verifier import verify


class Execution(NamedTuple):
    """What one run of a filter did: its u32 result, the indices it executed in order,
    and ``(A, X)`` as each of those instructions found them (parallel to ``path``)."""

    ret: int
    path: tuple[int, ...]
    registers: tuple[tuple[int, int], ...] = ()


def alu(operation: int, a: int, operand: int) -> int:
    """One 32-bit ALU step as the kernel computes it (wraparound, shifts by ``& 31``)."""
    if operation == op.BPF_ADD:
        return (a + operand) & U32_MASK
    if operation == op.BPF_SUB:
        return (a - operand) & U32_MASK
    if operation == op.BPF_MUL:
        return (a * operand) & U32_MASK
    if operation == op.BPF_DIV:
        return a // operand
    if operation == op.BPF_OR:
        return a | operand
    if operation == op.BPF_AND:
        return a & operand
    if operation == op.BPF_XOR:
        return a ^ operand
    if operation == op.BPF_LSH:
        return (a << (operand & 31)) & U32_MASK
    if operation == op.BPF_RSH:
        return a >> (operand & 31)
    raise AssertionError(f"ALU op {operation:#x} passed the verifier")


def _taken(operation: int, a: int, operand: int) -> bool:
    if operation == op.BPF_JEQ:
        return a == operand
    if operation == op.BPF_JGT:
        return a > operand
    if operation == op.BPF_JGE:
        return a >= operand
    if operation == op.BPF_JSET:
        return a & operand != 0
    raise AssertionError(f"jump op {operation:#x} passed the verifier")


@lru_cache(maxsize=64)
def _verified(program: tuple[Insn, ...]) -> tuple[Insn, ...]:
    """Verify once per distinct program: tests and ``emu`` run one program on many records."""
    verify(program)
    return program


def interpret(program: Sequence[Insn], data: SeccompData) -> Execution:
    """Run ``program`` on ``data`` as the kernel would; refuse what the kernel refuses.

    Raises :class:`~callgate.bpf.verifier.VerifierError` for a program the kernel
    would not install.
    """
    program = _verified(tuple(program))
    a = x = 0
    mem = [0] * op.BPF_MEMWORDS
    path: list[int] = []
    registers: list[tuple[int, int]] = []
    pc = 0
    while True:
        path.append(pc)
        registers.append((a, x))
        insn = program[pc]
        code, k = insn.code, insn.k
        cls = op.bpf_class(code)
        pc += 1
        if cls == op.BPF_RET:
            ret = a if op.bpf_rval(code) == op.BPF_A else k
            return Execution(ret, tuple(path), tuple(registers))
        if cls in (op.BPF_LD, op.BPF_LDX):
            mode = op.bpf_mode(code)
            if mode == op.BPF_ABS:
                value = data.word(k) & U32_MASK  # nr may be given signed
            elif mode == op.BPF_LEN:
                value = SECCOMP_DATA_SIZE
            elif mode == op.BPF_MEM:
                value = mem[k]
            else:  # BPF_IMM
                value = k
            if cls == op.BPF_LD:
                a = value
            else:
                x = value
        elif cls == op.BPF_ST:
            mem[k] = a
        elif cls == op.BPF_STX:
            mem[k] = x
        elif cls == op.BPF_ALU:
            operation = op.bpf_op(code)
            if operation == op.BPF_NEG:
                a = -a & U32_MASK
                continue
            operand = x if op.bpf_src(code) == op.BPF_X else k
            if operation == op.BPF_DIV and operand == 0:
                return Execution(0, tuple(path), tuple(registers))
            a = alu(operation, a, operand)
        elif cls == op.BPF_JMP:
            operation = op.bpf_op(code)
            if operation == op.BPF_JA:
                pc += k
                continue
            operand = x if op.bpf_src(code) == op.BPF_X else k
            pc += insn.jt if _taken(operation, a, operand) else insn.jf
        elif op.bpf_miscop(code) == op.BPF_TAX:
            x = a
        else:  # BPF_TXA
            a = x
