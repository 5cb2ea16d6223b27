"""The bytes ABI: call a guest function with bytes in and get bytes out.

The guest exports ``memory``, ``cg_alloc(i32 size) -> i32 ptr`` (0: cannot
allocate) and ``NAME(i32 in_ptr, i32 in_len) -> i64`` returning
``(out_ptr << 32) | out_len``. The host

1. calls ``cg_alloc(len(data))`` and copies ``data`` to the pointer (bounds-checked:
   a lying allocator cannot make the host write outside linear memory);
2. calls ``NAME(ptr, len)``;
3. refuses an ``out_len`` over the plugin's output cap *from the length alone*,
   before copying anything, then reads ``[out_ptr, out_ptr + out_len)``
   bounds-checked (no 32-bit wrap-around: the sum is computed in Python ints).

``callgate.h`` in ``guests/include`` is the guest side of this contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callgate.gates.errors import AbiError, GuestAllocError, OutputLimitExceeded
from callgate.runtime.loading import format_signature

if TYPE_CHECKING:
    from callgate.runtime.plugin import Plugin

ALLOC = "cg_alloc"
ALLOC_SIGNATURE = (("i32",), ("i32",))
BYTES_SIGNATURE = (("i32", "i32"), ("i64",))
M32 = 0xFFFFFFFF


def _require(plugin: Plugin, name: str, wanted: tuple[tuple[str, ...], tuple[str, ...]],
             role: str) -> None:
    actual = plugin.export_signature(name)
    if actual is None:
        raise AbiError(f"{plugin.name}: a bytes call needs the export {name!r} ({role}), "
                       "which the module does not have; see guests/include/callgate.h")
    if actual != wanted:
        raise AbiError(f"{plugin.name}: export {name!r} ({role}) has signature "
                       f"{format_signature(*actual)}; the bytes ABI needs "
                       f"{format_signature(*wanted)}")


def call_bytes(plugin: Plugin, name: str, data: bytes) -> bytes:
    """Run bytes-ABI export ``name`` on ``data``; see the module docstring for each check.

    The caller holds the plugin's call scope (``Plugin.call``), so the allocation and
    the call spend one budget, as one call.
    """
    _require(plugin, name, BYTES_SIGNATURE, "the bytes function")
    _require(plugin, ALLOC, ALLOC_SIGNATURE, "the guest allocator")
    if plugin.memory() is None:
        raise AbiError(f"{plugin.name}: a bytes call needs an exported memory named "
                       "'memory'; the module exports none")
    if len(data) > M32:
        raise AbiError(f"input of {len(data)} bytes does not fit a 32-bit length")
    ptr = plugin.call_int(ALLOC, len(data))
    assert isinstance(ptr, int)
    ptr &= M32
    if ptr == 0:
        raise GuestAllocError(f"{plugin.name}: guest cannot allocate {len(data)} bytes "
                              "for the input (cg_alloc returned 0)")
    memory = plugin.memory()
    assert memory is not None
    memory.write(ptr, data)
    packed = plugin.call_int(name, ptr, len(data))
    assert isinstance(packed, int)
    packed &= 0xFFFFFFFFFFFFFFFF
    out_ptr, out_len = packed >> 32, packed & M32
    cap = plugin.limits.output
    if cap is not None and out_len + plugin.output_used > cap:
        raise OutputLimitExceeded(
            f"{plugin.name}: {name} returned {out_len} bytes (after writing "
            f"{plugin.output_used}); the output limit is {cap} bytes (Limits.output)")
    memory = plugin.memory()
    assert memory is not None
    return memory.read(out_ptr, out_len)
