"""``struct seccomp_data``, byte for byte as the kernel lays it out (``<linux/seccomp.h>``).

::

    struct seccomp_data {
        int   nr;                   /* offset 0  */
        __u32 arch;                 /* offset 4  */
        __u64 instruction_pointer;  /* offset 8  */
        __u64 args[6];              /* offset 16, 24, ... 56 */
    };                              /* size 64 */

A filter addresses it in 32-bit words; on a little-endian machine ``args[i]``'s
low word is at ``16 + 8*i`` and its high word at ``20 + 8*i``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from callgate.errors import CallgateError

_LAYOUT = struct.Struct("<iIQ6Q")
ARG_COUNT = 6  # args[6]: a filter sees six arguments of any call, no more
SECCOMP_DATA_SIZE = _LAYOUT.size  # 64

OFF_NR = 0
OFF_ARCH = 4
OFF_IP = 8
OFF_IP_HI = 12
OFF_ARGS = 16

U32_MASK = 0xFFFFFFFF
U64_MASK = 0xFFFFFFFFFFFFFFFF


def arg_lo(index: int) -> int:
    """Offset of the low 32 bits of ``args[index]``."""
    return OFF_ARGS + 8 * index


def arg_hi(index: int) -> int:
    """Offset of the high 32 bits of ``args[index]``."""
    return OFF_ARGS + 8 * index + 4


class SeccompDataError(CallgateError, ValueError):
    """A ``seccomp_data`` field that does not fit the kernel's type."""


class SeccompData(NamedTuple):
    """One system (or gate) call as a filter sees it.

    ``nr`` is stored as the kernel's ``int``: values are accepted as signed or
    unsigned 32-bit and normalised to unsigned, which is how a BPF load sees them.
    """

    nr: int
    arch: int
    instruction_pointer: int = 0
    args: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)

    @classmethod
    def make(
        cls, nr: int, arch: int, args: tuple[int, ...] | list[int] = (), ip: int = 0
    ) -> SeccompData:
        """Build a record, padding args to six and checking every width."""
        if len(args) > ARG_COUNT:
            raise SeccompDataError(f"seccomp_data has {ARG_COUNT} args, got {len(args)}")
        if not -(2**31) <= nr <= U32_MASK:
            raise SeccompDataError(f"nr {nr} does not fit in 32 bits")
        if not 0 <= arch <= U32_MASK:
            raise SeccompDataError(f"arch {arch:#x} does not fit in u32")
        if not 0 <= ip <= U64_MASK:
            raise SeccompDataError(f"instruction_pointer {ip:#x} does not fit in u64")
        full = tuple(args) + (0,) * (ARG_COUNT - len(args))
        for i, a in enumerate(full):
            if not -(2**63) <= a <= U64_MASK:
                raise SeccompDataError(f"args[{i}] = {a} does not fit in 64 bits")
        a0, a1, a2, a3, a4, a5 = (a & U64_MASK for a in full)
        return cls(nr & U32_MASK, arch, ip, (a0, a1, a2, a3, a4, a5))

    def pack(self) -> bytes:
        nr = self.nr - (1 << 32) if self.nr & 0x80000000 else self.nr
        return _LAYOUT.pack(nr, self.arch, self.instruction_pointer, *self.args)

    @classmethod
    def unpack(cls, raw: bytes) -> SeccompData:
        if len(raw) != SECCOMP_DATA_SIZE:
            raise SeccompDataError(f"seccomp_data is {SECCOMP_DATA_SIZE} bytes, got {len(raw)}")
        nr, arch, ip, a0, a1, a2, a3, a4, a5 = _LAYOUT.unpack(raw)
        return cls(nr & U32_MASK, arch, ip, (a0, a1, a2, a3, a4, a5))

    def word(self, offset: int) -> int:
        """The aligned 32-bit word a ``BPF_LD|BPF_W|BPF_ABS`` at ``offset`` loads."""
        if offset % 4 or not 0 <= offset < SECCOMP_DATA_SIZE:
            raise SeccompDataError(f"offset {offset} is not an aligned word inside seccomp_data")
        if offset == OFF_NR:
            return self.nr
        if offset == OFF_ARCH:
            return self.arch
        if offset < OFF_ARGS:
            return (self.instruction_pointer >> (32 * ((offset - OFF_IP) // 4))) & U32_MASK
        i, half = divmod(offset - OFF_ARGS, 8)
        return (self.args[i] >> (8 * half)) & U32_MASK
