"""The guest's fd table: WASI fd numbers -> host handles, with rights checked per fd.

Each entry owns at most one host fd (closed when the guest closes it, when it
is renumbered over, or when the plugin closes). Captured and fed stdio are not
host fds at all: they are byte buffers, so a plugin's stdio never touches the
host's unless the embedder asked for ``"inherit"``.

Programs are tested on wasmtime, so fd numbers and what stdio looks like follow
wasmtime's preview1 exactly (``tests/wasi/test_wasi_fdtable.py`` compares the two):

* a new fd takes the highest number that was freed (closed, or renumbered away)
  and not reused since; when none is, the number after the highest ever used
  (:meth:`FdTable.add`);
* ``fd_renumber(from, to)`` needs both open (EBADF otherwise); ``to`` is closed
  and ``from`` becomes free (:meth:`FdTable.renumber`);
* stdio reports filetype CHARACTER_DEVICE only for a terminal, UNKNOWN for
  anything else (pipe, ``/dev/null``, a regular file, a byte buffer), no fdflags,
  and the one right it has as both base and inheriting rights: FD_READ for
  stdin, FD_WRITE for stdout and stderr (:func:`stdio_entry`).
"""

from __future__ import annotations

import heapq
import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any, Protocol

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import types as T
from callgate.gates.wasi.gate import WasiError

EMFILE = E.WASI_ERRNO["EMFILE"]
ENOTDIR = E.WASI_ERRNO["ENOTDIR"]
ESPIPE = E.WASI_ERRNO["ESPIPE"]
_SEEK_RIGHTS = T.R["FD_SEEK"] | T.R["FD_TELL"]


def filetype_of(mode: int) -> int:
    """WASI filetype for a host ``st_mode``."""
    if stat.S_ISREG(mode):
        return T.FILETYPE_REGULAR_FILE
    if stat.S_ISDIR(mode):
        return T.FILETYPE_DIRECTORY
    if stat.S_ISLNK(mode):
        return T.FILETYPE_SYMBOLIC_LINK
    if stat.S_ISCHR(mode):
        return T.FILETYPE_CHARACTER_DEVICE
    if stat.S_ISBLK(mode):
        return T.FILETYPE_BLOCK_DEVICE
    if stat.S_ISSOCK(mode):
        return T.FILETYPE_SOCKET_STREAM
    return T.FILETYPE_UNKNOWN


class FedInput:
    """stdin fed from bytes given by the embedder."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def read(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk

    def remaining(self) -> int:
        return len(self.data) - self.pos


@dataclass(slots=True)
class FdEntry:
    """One open guest fd. ``host_fd`` is None for byte-buffer stdio."""

    filetype: int
    allowed: int                         # the rights its calls are checked against
    rights_base: int                     # what fd_fdstat_get reports (wasmtime's values)
    rights_inheriting: int
    host_fd: int | None = None
    flags: int = 0                       # WASI fdflags as the guest set them
    preopen: str | None = None           # guest path of a preopened directory
    readonly: bool = False               # opened beneath a read-only preopen
    owns_fd: bool = True                 # False for inherited stdio
    fed: FedInput | None = None          # stdin from bytes
    sink: bytearray | None = None        # captured stdout/stderr
    sock: socket.socket | None = None    # a socket the host passed in (or accepted)
    stdio: bool = False                  # the guest's stdin, stdout or stderr (wherever moved)
    dir_cache: list[tuple[bytes, int, int]] | None = field(default=None)
    # (mirror, fd) while the entry sits in a mirrored table (see FdTable.attach_mirror).
    _watch: tuple[FdMirror, int] | None = field(default=None, repr=False, compare=False)

    @property
    def is_dir(self) -> bool:
        return self.filetype == T.FILETYPE_DIRECTORY

    @property
    def seekable(self) -> bool:
        return self.host_fd is not None and self.filetype in (T.FILETYPE_REGULAR_FILE,
                                                              T.FILETYPE_BLOCK_DEVICE)

    def need(self, rights: int) -> None:
        """EBADF unless this fd holds every right in ``rights`` (what wasmtime answers).

        A stream that lacks only the right to seek answers ESPIPE instead (it could
        never seek: ``fd_pread`` on stdin, ``fd_pwrite`` on stdout, as in wasmtime).
        """
        missing = rights & ~self.allowed
        if missing:
            if missing & ~_SEEK_RIGHTS == 0 and not self.seekable and not self.is_dir:
                raise WasiError(ESPIPE)
            raise WasiError(E.EBADF)

    def fd(self) -> int:
        """The host fd, or EBADF for a byte-buffer stream that has none."""
        if self.host_fd is None:
            raise WasiError(E.EBADF)
        return self.host_fd

    def stdio_filestat(self) -> bytes:
        """fd_filestat_get of stdio: its filetype and zeros, whatever the host fd is."""
        return T.FILESTAT.pack(0, 0, self.filetype, 0, 0, 0, 0, 0)

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()
        elif self.host_fd is not None and self.owns_fd:
            os.close(self.host_fd)
        self.host_fd = None
        self.sock = None


class FdMirror(Protocol):
    """Something that keeps a copy of a table's entries (the native gate core's fd array):
    told every entry placed at an fd, every change to one, and every fd freed."""

    def set(self, fd: int, entry: FdEntry) -> None: ...

    def clear(self, fd: int) -> None: ...


# Fields whose change a mirror never needs to hear about: the directory listing cache, and
# a stdin feed's or captured buffer's contents (``entry.sink += data`` assigns the same
# bytearray back). A change between None and an object is always told.
_UNMIRRORED = frozenset({"dir_cache", "_watch"})
_OBJECTS = frozenset({"fed", "sink", "sock"})


class WatchedFdEntry(FdEntry):
    """An :class:`FdEntry` in a mirrored table: every assignment to a field is told to the
    mirror. The table swaps an entry's class to this one when it places it, and back when
    the entry leaves (so an unmirrored entry costs nothing). Same slots, same behaviour."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        watch = self._watch
        if name in _OBJECTS and watch is not None:
            unchanged = (getattr(self, name) is None) == (value is None)
            object.__setattr__(self, name, value)
            if unchanged:
                return
        else:
            object.__setattr__(self, name, value)
            if watch is None or name in _UNMIRRORED:
                return
        watch[0].set(watch[1], self)


class FdTable:
    """fd number -> :class:`FdEntry`, numbered the way wasmtime's preview1 numbers them.

    wasmtime keeps the numbers it has freed in a set and hands out the highest of
    them first; with none free, the number after the highest in use. Every number
    below the highest ever used is either open or free, so :attr:`free` is exactly
    the unused numbers below :attr:`high_water` (a max-heap of them, negated: a
    number leaves it only by being handed out again, as ``fd_renumber``'s target
    must be open). The table never holds more than ``max_fds`` entries, so every
    fd number is below ``max_fds``.
    """

    def __init__(self, max_fds: int) -> None:
        self.max_fds = max_fds
        self.entries: dict[int, FdEntry] = {}
        self.free: list[int] = []      # -fd for every free number (heapq is a min-heap)
        self.high_water = 0            # 1 + the highest fd number ever handed out
        self.mirror: FdMirror | None = None

    def attach_mirror(self, mirror: FdMirror) -> None:
        """From now on, tell ``mirror`` every fd placed, changed or freed (starting with
        every entry open now). The native gate core mirrors the table this way; the
        table stays the one definition."""
        self.mirror = mirror
        for fd, entry in self.entries.items():
            self._watch(fd, entry)

    def _watch(self, fd: int, entry: FdEntry) -> None:
        mirror = self.mirror
        if mirror is None:
            return
        object.__setattr__(entry, "_watch", (mirror, fd))
        if type(entry) is FdEntry:
            entry.__class__ = WatchedFdEntry
        mirror.set(fd, entry)

    def _unwatch(self, fd: int, entry: FdEntry) -> None:
        mirror = self.mirror
        if mirror is None:
            return
        mirror.clear(fd)
        object.__setattr__(entry, "_watch", None)
        if type(entry) is WatchedFdEntry:
            entry.__class__ = FdEntry  # type: ignore[assignment]  # the same slots

    def get(self, fd: int) -> FdEntry:
        entry = self.entries.get(fd)
        if entry is None:
            raise WasiError(E.EBADF)
        return entry

    def directory(self, fd: int, right: int) -> FdEntry:
        """A directory fd holding ``right``; ENOTCAPABLE without it.

        On any other fd wasmtime answers ENOTDIR to ``path_open`` (but EBADF on stdio) and
        EBADF to every other path call.
        """
        entry = self.get(fd)
        if not entry.is_dir:
            raise WasiError(ENOTDIR if right == T.R["PATH_OPEN"] and not entry.stdio
                            else E.EBADF)
        if entry.allowed & right != right:
            raise WasiError(E.ENOTCAPABLE)
        return entry

    def add(self, entry: FdEntry) -> int:
        """Insert at the highest free number, else at :attr:`high_water`; EMFILE (entry
        released) past ``max_fds``."""
        if len(self.entries) >= self.max_fds:
            entry.release()
            raise WasiError(EMFILE)
        if self.free:
            fd = -heapq.heappop(self.free)
        else:
            fd = self.high_water
            self.high_water += 1
        self.entries[fd] = entry
        self._watch(fd, entry)
        return fd

    def close(self, fd: int) -> None:
        entry = self.get(fd)
        del self.entries[fd]
        heapq.heappush(self.free, -fd)
        self._unwatch(fd, entry)
        entry.release()

    def renumber(self, old: int, new: int) -> None:
        """Move ``old`` onto ``new``: both must be open (EBADF); ``new``'s entry is
        closed and ``old`` becomes free. Renumbering an open fd onto itself does nothing."""
        entry = self.get(old)
        target = self.get(new)
        if old == new:
            return
        del self.entries[old]
        heapq.heappush(self.free, -old)
        self._unwatch(new, target)
        self._unwatch(old, entry)
        self.entries[new] = entry
        self._watch(new, entry)
        target.release()

    def close_all(self) -> None:
        entries, self.entries = self.entries, {}
        for fd, entry in entries.items():
            self._unwatch(fd, entry)
        for entry in entries.values():
            entry.release()


# What WasiConfig.stdin/stdout/stderr may hold (checked at run time: it comes from embedders).
StdioMode = bytes | bytearray | memoryview | str | None


def stdio_entry(which: int, mode: StdioMode) -> FdEntry:
    """fd 0/1/2: ``"inherit"`` (the host's own fd, never closed by us), bytes, or a bytearray.

    Whatever is behind it, stdio looks as it does under wasmtime: a character
    device if it is a terminal, else of unknown type; never seekable; holding
    FD_READ (stdin) or FD_WRITE (stdout, stderr) as base and inheriting rights
    and nothing else, so every other fd_* call answers EBADF (ESPIPE for the
    seeking ones), and fd_filestat_get reports only the filetype
    (:meth:`FdEntry.stdio_filestat`).
    """
    right = T.R["FD_READ"] if which == 0 else T.R["FD_WRITE"]
    if mode == "inherit":
        ftype = T.FILETYPE_CHARACTER_DEVICE if _isatty(which) else T.FILETYPE_UNKNOWN
        return FdEntry(ftype, right, right, right, host_fd=which, owns_fd=False, stdio=True)
    if which == 0:
        data = b"" if mode is None else mode
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("stdin must be bytes or 'inherit'")
        return FdEntry(T.FILETYPE_UNKNOWN, right, right, right, fed=FedInput(bytes(data)),
                       stdio=True)
    if mode is None:
        mode = bytearray()
    if not isinstance(mode, bytearray):
        raise TypeError("stdout/stderr must be a bytearray (captured) or 'inherit'")
    return FdEntry(T.FILETYPE_UNKNOWN, right, right, right, sink=mode, stdio=True)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def socket_entry(sock: socket.socket) -> FdEntry:
    ftype = T.FILETYPE_SOCKET_DGRAM if sock.type == socket.SOCK_DGRAM \
        else T.FILETYPE_SOCKET_STREAM
    return FdEntry(ftype, T.RIGHTS_SOCKET, T.RIGHTS_SOCKET, 0, host_fd=sock.fileno(), sock=sock)
