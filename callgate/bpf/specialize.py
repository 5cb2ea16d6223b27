"""Per-gate filters: the policy program with its arch check and number dispatch run ahead.

A gate binding always calls the filter with the same ``nr`` and ``arch``, so the
part of the program that only looks at those two words (the arch check, the
JGE/JEQ tree over numbers) gives the same answer on every call. This module runs
that prefix once, at load time: starting at instruction 0 it follows loads of
``nr``/``arch`` and constant jumps, and stops at the first instruction that needs
anything else (an arg, ``ip``, X, scratch memory). The gate's filter is then
``A = <known value>`` followed by the rest of the program from there. Classic BPF
only jumps forward, so the remainder's relative jumps stay valid as they are.

The result is the same program for this ``(nr, arch)`` — it still reads ``nr``
itself if it loads it again later — only shorter on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import OFF_ARCH, OFF_NR

_LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
_JA = op.BPF_JMP | op.BPF_JA
_CONDITIONS: dict[int, Callable[[int, int], bool]] = {
    op.BPF_JMP | op.BPF_JEQ | op.BPF_K: lambda a, k: a == k,
    op.BPF_JMP | op.BPF_JGT | op.BPF_K: lambda a, k: a > k,
    op.BPF_JMP | op.BPF_JGE | op.BPF_K: lambda a, k: a >= k,
    op.BPF_JMP | op.BPF_JSET | op.BPF_K: lambda a, k: bool(a & k),
}


def specialize(program: Sequence[Insn], nr: int, arch: int) -> tuple[Insn, ...]:
    """``program`` for calls with this ``nr`` and ``arch`` only (verified input assumed)."""
    words = {OFF_NR: nr & 0xFFFFFFFF, OFF_ARCH: arch & 0xFFFFFFFF}
    a = 0
    pc = 0
    while pc < len(program):
        insn = program[pc]
        if insn.code == _LD_ABS and insn.k in words:
            a = words[insn.k]
            pc += 1
        elif insn.code == _JA:
            pc += 1 + insn.k
        elif insn.code in _CONDITIONS:
            pc += 1 + (insn.jt if _CONDITIONS[insn.code](a, insn.k) else insn.jf)
        else:
            break
    if pc == 0:
        return tuple(program)
    return (Insn(op.BPF_LD | op.BPF_IMM, 0, 0, a), *program[pc:])
