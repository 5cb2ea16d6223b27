"""What a guest learns of a file's identity: wasmtime's answer, never the host's inode.

wasmtime reports every file's ``st_dev`` as 1 and its ``st_ino`` as a hash of the host's
``(st_dev, st_ino)``: Rust's ``DefaultHasher`` (SipHash-1-3 with zero keys) over the two
numbers as little-endian u64s. callgate answers the same, so programs see the numbers
they see under wasmtime (equal files still compare equal), and no host inode number or
device id reaches a guest.
"""

from __future__ import annotations

import struct

M64 = 0xFFFFFFFFFFFFFFFF
GUEST_DEV = 1
_TWO_U64 = struct.Struct("<QQ")


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & M64


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 (one compression round, three finalisation rounds), as Rust's std."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & M64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & M64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & M64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & M64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    full = len(data) - len(data) % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rounds(1)
        v0 ^= m
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[full:], "little")
    v3 ^= last
    rounds(1)
    v0 ^= last
    v2 ^= 0xFF
    rounds(3)
    return v0 ^ v1 ^ v2 ^ v3


def guest_ino(host_dev: int, host_ino: int) -> int:
    """The inode number a guest sees for the host file ``(host_dev, host_ino)``."""
    return siphash13(_TWO_U64.pack(host_dev & M64, host_ino & M64))
