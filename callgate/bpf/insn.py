"""The instruction model: ``struct sock_filter`` as plain data, and its raw byte form.

The raw form is exactly what libseccomp's ``seccomp_export_bpf`` writes and what
``seccomp(SECCOMP_SET_MODE_FILTER)`` reads on a little-endian host: 8 bytes per
instruction, ``u16 code, u8 jt, u8 jf, u32 k``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from callgate.bpf import opcodes as op
from callgate.errors import CallgateError

_SOCK_FILTER = struct.Struct("<HBBI")
INSN_SIZE = _SOCK_FILTER.size


class BpfFormatError(CallgateError, ValueError):
    """Raw bytes that are not a whole number of ``struct sock_filter`` records."""


class Insn(NamedTuple):
    """One classic-BPF instruction. Fields are range-checked only by :meth:`checked`."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def checked(self) -> Insn:
        """Return self if every field fits its C type, else raise ``BpfFormatError``."""
        if not 0 <= self.code <= 0xFFFF:
            raise BpfFormatError(f"code {self.code:#x} does not fit in u16")
        if not 0 <= self.jt <= 0xFF or not 0 <= self.jf <= 0xFF:
            raise BpfFormatError(f"jump offsets jt={self.jt} jf={self.jf} do not fit in u8")
        if not 0 <= self.k <= 0xFFFFFFFF:
            raise BpfFormatError(f"k {self.k:#x} does not fit in u32")
        return self


Program = Sequence[Insn]


def flow(insn: Insn, pc: int) -> tuple[tuple[str, int], ...]:
    """Where control goes after ``insn`` at line ``pc``, as ``(field, line)`` pairs: ``next``
    for a statement, ``goto`` for ``JA``, ``jt`` and ``jf`` for any other jump, nothing
    after a return. Lines past the end are the caller's to refuse."""
    cls = op.bpf_class(insn.code)
    if cls == op.BPF_RET:
        return ()
    if cls != op.BPF_JMP:
        return (("next", pc + 1),)
    if op.bpf_op(insn.code) == op.BPF_JA:
        return (("goto", pc + 1 + insn.k),)
    return (("jt", pc + 1 + insn.jt), ("jf", pc + 1 + insn.jf))


def pack(program: Iterable[Insn]) -> bytes:
    """Encode instructions as packed little-endian ``struct sock_filter`` records."""
    out = bytearray()
    for insn in program:
        c = insn.checked()
        out += _SOCK_FILTER.pack(c.code, c.jt, c.jf, c.k)
    return bytes(out)


def unpack(raw: bytes) -> list[Insn]:
    """Decode packed ``struct sock_filter`` records; the length must be a multiple of 8."""
    if len(raw) % INSN_SIZE:
        raise BpfFormatError(
            f"{len(raw)} bytes is not a whole number of 8-byte instructions; "
            "raw BPF files hold packed struct sock_filter records (export_bpf format)"
        )
    return [Insn(*fields) for fields in _SOCK_FILTER.iter_unpack(raw)]
