"""How a WASI gate is declared: one function per witx function, plus what it may syscall.

``@wasi_gate("i32 i32", syscalls=...)`` records the function (named exactly like
the witx function) with its core-wasm parameter types and the host syscalls its
implementation makes. The wrapper turns every failure into a WASI errno, so no
host exception reaches the guest: a bad guest pointer is EFAULT, invalid UTF-8
is EILSEQ, a host ``OSError`` is translated by :func:`wasi_errno.from_host`.
Exceptions that must end the call (``GuestExit``, deadlines, output caps)
pass through untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from callgate.arch import wasi_errno as E
from callgate.gates.memory import GuestMemoryError
from callgate.gates.spec import GateFunc, ValType

if TYPE_CHECKING:  # state imports fdtable, which imports this module (WasiError)
    from callgate.gates.wasi.state import WasiCall


class WasiError(Exception):
    """A gate's deliberate failure with a WASI errno (never leaves the gate wrapper)."""

    def __init__(self, errno: int) -> None:
        super().__init__(E.WASI_ERRNO_NAMES.get(errno, str(errno)))
        self.errno = errno


@dataclass(frozen=True, slots=True)
class WasiGateDef:
    name: str
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]
    func: GateFunc
    syscalls: frozenset[str]
    uses_memory: bool
    doc: str


GATE_DEFS: dict[str, WasiGateDef] = {}

EILSEQ = E.WASI_ERRNO["EILSEQ"]
_VALTYPES: dict[str, ValType] = {"i32": "i32", "i64": "i64", "f32": "f32", "f64": "f64"}

# A WASI gate implementation: ``func(call: WasiCall, *args: int) -> None``; it fails by
# raising (see _guard), so the registered gate returns the errno.
WasiGateFunc = TypeVar("WasiGateFunc", bound=Callable[..., None])


def _valtypes(text: str) -> tuple[ValType, ...]:
    """``"i32 i64"`` -> ``("i32", "i64")``; an unknown type is a KeyError at import time."""
    return tuple(_VALTYPES[kind] for kind in text.split())


def wasi_gate(params: str, *, syscalls: Iterable[str] = (), results: str = "i32",
              uses_memory: bool = True) -> Callable[[WasiGateFunc], WasiGateFunc]:
    """Register the decorated function as the WASI gate of the same name."""

    def register(func: WasiGateFunc) -> WasiGateFunc:
        guarded: GateFunc = _guard(func) if results else func
        GATE_DEFS[func.__name__] = WasiGateDef(
            func.__name__, _valtypes(params), _valtypes(results), guarded,
            frozenset(syscalls), uses_memory, (func.__doc__ or "").strip().splitlines()[0])
        return func

    return register


def _guard(func: Callable[..., None]) -> Callable[..., int]:
    @functools.wraps(func)
    def gate(call: WasiCall, *args: int) -> int:
        try:
            func(call, *args)
            return E.ESUCCESS
        except WasiError as exc:
            return exc.errno
        except GuestMemoryError:
            return E.EFAULT
        except UnicodeError:
            return EILSEQ
        except OSError as exc:
            return E.from_host(exc.errno) if exc.errno else E.EIO
        except (ValueError, OverflowError):
            return E.EINVAL
    return gate


def signed64(value: int) -> int:
    """An i64 argument arrives zero-extended; witx ``s64`` fields want it signed."""
    return value - (1 << 64) if value >= 1 << 63 else value


def guest_str(call: WasiCall, ptr: int, length: int) -> str:
    """A guest path: bounds-checked, valid UTF-8 (else EILSEQ), no NUL (else EINVAL)."""
    text = call.mem.read_str(ptr, length)
    if "\0" in text:
        raise WasiError(E.EINVAL)
    return text
