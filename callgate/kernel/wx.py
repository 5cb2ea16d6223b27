"""W^X after lockdown: seal every writable and executable mapping before the filter goes on.

The host filter denies ``mmap``/``mprotect`` with ``PROT_WRITE|PROT_EXEC`` (and, unless
``exec_after_lockdown``, any ``PROT_EXEC``), so no *new* writable code can appear once it is
installed. Mappings made before it stay as they were, and one kind always exists: libffi's
closure pages. Every ctypes callback (each gate's raw host callback, wasmtime-py's own
trampolines) and every cffi ``ffi.callback`` is a small trampoline that libffi writes into
an anonymous ``rwxp`` page (Debian's libffi 3.4 is built without static trampolines and
maps closures writable and executable unless the kernel refuses). Left alone, code that
runs after lockdown (a broker, a compromised gate) could write machine code there and jump
to it.

:func:`seal_wx`, called by :func:`~callgate.kernel.lockdown.lockdown` just before the
filter, does four things:

1. refuses new callbacks from now on (:class:`CallbackSealedError`, instead of a crash):
   libffi's allocator writes its bookkeeping into the closure pages, which are about to
   become read-only;
2. pins every callback alive (one extra reference that nothing ever drops, so it survives
   interpreter shutdown): freeing one would make libffi write into a sealed page, too;
3. ``mprotect``\\ s every writable and executable mapping to read+exec, and makes every
   writable *shared* mapping of a file or memfd that is also mapped executable (libffi's
   double mapping on SELinux systems) read-only;
4. re-reads ``/proc/self/maps`` and fails if anything writable is still executable.

It works on ``/proc/self/maps``, :mod:`gc` and :mod:`ctypes` alone, so the kernel layer
needs nothing from the runtime. Irreversible, like the rest of lockdown.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from callgate.arch import native_arch
from callgate.errors import CallgateError
from callgate.kernel.binding import raw_syscall

PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
READ_IMPLIES_EXEC = 0x0400000  # personality flag: every readable mapping is executable
_PERSONALITY_QUERY = 0xFFFFFFFF


class SealError(CallgateError, OSError):
    """W^X could not be established; the process is only partly sealed and should exit."""


class CallbackSealedError(CallgateError, RuntimeError):
    """A C callback (ctypes or cffi) was asked for after lockdown sealed executable memory."""


_SEALED_MESSAGE = (
    "cannot create a C callback after kernel lockdown: callbacks live in writable and "
    "executable memory, which lockdown sealed read+exec (W^X). Create every Plugin and "
    "callback before locking down."
)


@dataclass(frozen=True, slots=True)
class Mapping:
    """One line of ``/proc/self/maps``."""

    start: int
    end: int
    perms: str  # "rwxp": read, write, exec, then p(rivate) or s(hared)
    offset: int
    dev: str
    inode: int
    path: str

    @property
    def writable(self) -> bool:
        return self.perms[1] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2] == "x"

    @property
    def shared(self) -> bool:
        return self.perms[3] == "s"

    def describe(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.start:x}-{self.end:x} {self.perms}{where}"


@dataclass(frozen=True, slots=True)
class WxSeal:
    """What :func:`seal_wx` did, for :class:`~callgate.kernel.lockdown.LockdownReport`.

    ``sealed``: each mapping that broke W^X, as ``"start-end perms path -> perms"``;
    ``pinned``: how many live callbacks were pinned so they are never freed;
    ``remaining``: what broke W^X when ``/proc/self/maps`` was read again after sealing.
    :func:`seal_wx` raises unless it is empty, so a report from lockdown always has
    ``remaining == ()``: nothing in the process is writable and executable at once.
    """

    sealed: tuple[str, ...]
    pinned: int
    remaining: tuple[str, ...] = ()

    @property
    def holds(self) -> bool:
        """True when nothing writable was executable after sealing."""
        return not self.remaining


def read_maps(path: str = "/proc/self/maps") -> tuple[Mapping, ...]:
    """Every mapping of a process, from its ``maps`` file."""
    with open(path) as f:
        lines = f.read().splitlines()
    maps = []
    for line in lines:
        fields = line.split(maxsplit=5)
        start, end = fields[0].split("-")
        maps.append(
            Mapping(
                start=int(start, 16),
                end=int(end, 16),
                perms=fields[1],
                offset=int(fields[2], 16),
                dev=fields[3],
                inode=int(fields[4]),
                path=fields[5] if len(fields) > 5 else "",
            )
        )
    return tuple(maps)


def wx_violations(maps: Iterable[Mapping] | None = None) -> tuple[Mapping, ...]:
    """Mappings that break W^X: writable and executable at once, or a writable shared view
    of a file (or memfd) that is mapped executable elsewhere - a second, writable address
    for the same code."""
    maps = tuple(read_maps() if maps is None else maps)
    code = {(m.dev, m.inode) for m in maps if m.executable and m.inode}
    return tuple(
        m
        for m in maps
        if m.writable and (m.executable or (m.shared and m.inode and (m.dev, m.inode) in code))
    )


# -- callbacks -----------------------------------------------------------------------------


def _closure_owners() -> Iterator[object]:
    """Every live object that owns a libffi closure: ctypes thunks and cffi callbacks."""
    cffi_backend = sys.modules.get("_cffi_backend")
    for obj in gc.get_objects():
        kind = type(obj)
        thunk = kind.__name__ == "CThunkObject" and kind.__module__ == "_ctypes"
        callback = (
            cffi_backend is not None
            and kind.__name__ == "__CDataOwnGC"
            and cffi_backend.typeof(obj).kind == "function"
        )
        if thunk or callback:
            yield obj


def pin_callbacks() -> int:
    """Give every live callback a reference nothing drops; return how many were pinned.

    A reference held by a Python container would be dropped at interpreter shutdown, and
    the closure freed into a sealed page; ``Py_IncRef`` leaks one on purpose instead.
    """
    import ctypes

    owners = list(_closure_owners())
    for obj in owners:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    return len(owners)


def _refuse_ctypes_callback(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """``__new__`` of every ctypes function-pointer type once sealed.

    Only the callback form (one Python callable) allocates a closure; a foreign function,
    an address or ``ctypes.cast``'s empty call construct as before.
    """
    import _ctypes

    if len(args) == 1 and callable(args[0]) and not isinstance(args[0], int | tuple):
        raise CallbackSealedError(_SEALED_MESSAGE)
    return _ctypes.CFuncPtr.__new__(cls, *args, **kwargs)


def _refuse_cffi_callback(*args: Any, **kwargs: Any) -> Any:
    raise CallbackSealedError(_SEALED_MESSAGE)


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def forbid_new_callbacks() -> None:
    """From now on, creating a ctypes callback or a cffi ``ffi.callback`` raises
    :class:`CallbackSealedError` instead of writing into a sealed closure page.

    Every existing ctypes function-pointer type gets a guarding ``__new__``, and so does
    every type made later (``CFUNCTYPE`` and friends derive from ``ctypes._CFuncPtr``,
    which is replaced by a guarded subclass). cffi's ABI-mode ``FFI.callback`` is replaced.
    """
    import _ctypes
    import ctypes

    guard = staticmethod(_refuse_ctypes_callback)
    for cls in list(_subclasses(_ctypes.CFuncPtr)):
        type.__setattr__(cls, "__new__", guard)
    metaclass: Any = type(_ctypes.CFuncPtr)
    sealed_base = metaclass(
        "CFuncPtr", (_ctypes.CFuncPtr,), {"_flags_": _ctypes.FUNCFLAG_CDECL, "__new__": guard}
    )
    ctypes._CFuncPtr = sealed_base  # type: ignore[attr-defined]  # ok: CFUNCTYPE reads it
    cffi = sys.modules.get("cffi")
    if cffi is not None:
        cffi.FFI.callback = _refuse_cffi_callback


# -- sealing -------------------------------------------------------------------------------


def _mprotect(mapping: Mapping, prot: int) -> None:
    size = mapping.end - mapping.start
    ret, err = raw_syscall(native_arch().number("mprotect"), mapping.start, size, prot)
    if ret == -1:
        raise SealError(err, f"mprotect({mapping.describe()}) failed: {os.strerror(err)}")


def _target(mapping: Mapping) -> tuple[int, str]:
    """The protection a W^X-breaking mapping is sealed to: read+exec for code, read-only
    for a writable shared alias of code."""
    if mapping.executable:
        return PROT_READ | PROT_EXEC, "r-x" + mapping.perms[3]
    return PROT_READ, "r--" + mapping.perms[3]


def _refuse_unsealable(maps: Iterable[Mapping]) -> None:
    ret, _ = raw_syscall(native_arch().number("personality"), _PERSONALITY_QUERY)
    if ret != -1 and ret & READ_IMPLIES_EXEC:
        raise SealError(
            errno.EPERM, "READ_IMPLIES_EXEC is set: every writable mapping is executable, "
            "so W^X cannot be sealed"
        )
    stack = [m for m in maps if m.path.startswith("[stack") and m.executable]
    if stack:
        raise SealError(
            errno.EPERM, f"the stack is executable ({stack[0].describe()}; a library linked "
            "with execstack): every thread stack is writable and executable, and sealing "
            "them would stop the threads"
        )


def seal_wx() -> WxSeal:
    """Leave no mapping writable and executable at once; see the module docstring.

    Call it after the last callback is made and before a filter forbids
    ``mprotect(PROT_EXEC)``. Raises :class:`SealError` if W^X cannot hold.
    """
    # No new closure from here on (another thread could otherwise map a fresh rwx page
    # after the maps are read), and none freed; then read what to seal.
    forbid_new_callbacks()
    pinned = pin_callbacks()
    before = read_maps()
    _refuse_unsealable(before)
    sealed = []
    for mapping in wx_violations(before):
        prot, perms = _target(mapping)
        _mprotect(mapping, prot)
        sealed.append(f"{mapping.describe()} -> {perms}")
    remaining = tuple(m.describe() for m in wx_violations())
    if remaining:
        raise SealError(errno.EPERM, f"still writable and executable after sealing: {remaining}")
    return WxSeal(tuple(sealed), pinned, remaining)
