"""Bounds-checked access to a guest's linear memory.

wasmtime-py's ``Memory.read`` silently returns short data past the end, so every
guest pointer must be checked by us. A :class:`GuestMemory` is a (base address,
size) window taken at the start of a gate call; linear memory cannot move while
the host runs a gate, because the guest is suspended. All reads copy, so a guest
cannot change data under a gate after it has been checked (no TOCTOU).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

from callgate.errors import CallgateError

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_IOVEC = struct.Struct("<II")


class GuestMemoryError(CallgateError):
    """A guest pointer or length outside its linear memory (WASI answers EFAULT)."""


class GuestMemory:
    """A window ``[base, base + size)`` onto linear memory with checked reads and writes.

    Every method that reads or writes raises :class:`GuestMemoryError` when the range
    falls outside the memory (a negative pointer or length included), before touching
    anything; a :class:`LiveMemory` (what ``Plugin.memory()`` returns) also raises
    :class:`~callgate.gates.errors.PluginClosed` once its plugin is closed.
    """

    __slots__ = ("_keepalive", "base", "size")

    def __init__(self, base: int, size: int, keepalive: object = None) -> None:
        self.base = base
        self.size = size
        self._keepalive = keepalive

    @classmethod
    def over(cls, buffer: bytearray) -> GuestMemory:
        """A window over a host ``bytearray``, for tests and tools that fake a guest."""
        if not buffer:
            return cls(0, 0, buffer)
        cbuf = (ctypes.c_char * len(buffer)).from_buffer(buffer)
        return cls(ctypes.addressof(cbuf), len(buffer), cbuf)

    def check(self, ptr: int, length: int) -> None:
        """Raise :class:`GuestMemoryError` unless ``[ptr, ptr + length)`` lies inside."""
        if ptr < 0 or length < 0 or ptr + length > self.size:
            raise GuestMemoryError(
                f"guest range [{ptr:#x}, +{length:#x}) is outside linear memory "
                f"of {self.size:#x} bytes"
            )

    def read(self, ptr: int, length: int) -> bytes:
        """``length`` bytes at ``ptr``, copied; :class:`GuestMemoryError` out of bounds."""
        self.check(ptr, length)
        return ctypes.string_at(self.base + ptr, length) if length else b""

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` to ``ptr``; :class:`GuestMemoryError` (nothing written) out of bounds."""
        n = len(data)
        self.check(ptr, n)
        if n:
            ctypes.memmove(self.base + ptr, data if type(data) is bytes else bytes(data), n)

    def read_str(self, ptr: int, length: int) -> str:
        """Decode guest UTF-8: :class:`GuestMemoryError` out of bounds, invalid text
        ``UnicodeDecodeError`` (WASI: EILSEQ)."""
        return self.read(ptr, length).decode("utf-8")

    def u32(self, ptr: int) -> int:
        """The little-endian u32 at ``ptr``; :class:`GuestMemoryError` out of bounds."""
        value: int = _U32.unpack(self.read(ptr, 4))[0]
        return value

    def u64(self, ptr: int) -> int:
        """The little-endian u64 at ``ptr``; :class:`GuestMemoryError` out of bounds."""
        value: int = _U64.unpack(self.read(ptr, 8))[0]
        return value

    def set_u32(self, ptr: int, value: int) -> None:
        """Store ``value`` (mod 2**32) at ``ptr``; :class:`GuestMemoryError` out of bounds."""
        self.write(ptr, _U32.pack(value & 0xFFFFFFFF))

    def set_u64(self, ptr: int, value: int) -> None:
        """Store ``value`` (mod 2**64) at ``ptr``; :class:`GuestMemoryError` out of bounds."""
        self.write(ptr, _U64.pack(value & 0xFFFFFFFFFFFFFFFF))

    def iovecs(self, ptr: int, count: int) -> list[tuple[int, int]]:
        """Read and validate an array of ``{u32 buf, u32 len}``: :class:`GuestMemoryError`
        when the array or any buffer it names is out of bounds."""
        raw = self.read(ptr, count * _IOVEC.size)
        vecs = list(_IOVEC.iter_unpack(raw))
        for buf, length in vecs:
            self.check(buf, length)
        return vecs


class LiveMemory(GuestMemory):
    """A window that follows the memory: ``base`` and ``size`` are asked again on every
    access, so a view kept across calls stays valid after the guest grows its memory.

    ``window()`` returns the current ``(base, size)`` and raises when the memory is gone
    (the plugin was closed). Gates get a plain :class:`GuestMemory`, taken per call.
    """

    __slots__ = ("_window",)

    def __init__(self, window: Callable[[], tuple[int, int]]) -> None:
        # No super().__init__: base and size are computed, never stored.
        self._window = window

    # Read-only views of the slots they shadow: nothing assigns them on a LiveMemory.
    @property
    def base(self) -> int:  # type: ignore[override]
        return self._window()[0]

    @property
    def size(self) -> int:  # type: ignore[override]
        return self._window()[1]
