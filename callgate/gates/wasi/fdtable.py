"""The guest's fd table: WASI fd numbers -> host handles, with rights checked per fd.

Each entry owns at most one host fd (closed when the guest closes it, when it
is renumbered over, or when the plugin closes). Captured and fed stdio are not
host fds at all: they are byte buffers, so a plugin's stdio never touches the
host's unless the embedder asked for ``"inherit"``.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import types as T
from callgate.gates.wasi.gate import WasiError

EMFILE = E.WASI_ERRNO["EMFILE"]
ENOTDIR = E.WASI_ERRNO["ENOTDIR"]


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
    rights_base: int
    rights_inheriting: int
    host_fd: int | None = None
    flags: int = 0                       # WASI fdflags as the guest set them
    preopen: str | None = None           # guest path of a preopened directory
    readonly: bool = False               # opened beneath a read-only preopen
    owns_fd: bool = True                 # False for inherited stdio
    fed: FedInput | None = None          # stdin from bytes
    sink: bytearray | None = None        # captured stdout/stderr
    sock: socket.socket | None = None    # a socket the host passed in (or accepted)
    dir_cache: list[tuple[bytes, int, int]] | None = field(default=None)

    @property
    def is_dir(self) -> bool:
        return self.filetype == T.FILETYPE_DIRECTORY

    @property
    def seekable(self) -> bool:
        return self.host_fd is not None and self.filetype in (T.FILETYPE_REGULAR_FILE,
                                                              T.FILETYPE_BLOCK_DEVICE)

    def need(self, rights: int) -> None:
        """EBADF unless this fd holds every right in ``rights`` (what wasmtime answers)."""
        if self.rights_base & rights != rights:
            raise WasiError(E.EBADF)

    def fd(self) -> int:
        """The host fd, or EBADF for a byte-buffer stream that has none."""
        if self.host_fd is None:
            raise WasiError(E.EBADF)
        return self.host_fd

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()
        elif self.host_fd is not None and self.owns_fd:
            os.close(self.host_fd)
        self.host_fd = None
        self.sock = None


class FdTable:
    """fd number -> :class:`FdEntry`; new fds take the lowest free number."""

    def __init__(self, max_fds: int) -> None:
        self.max_fds = max_fds
        self.entries: dict[int, FdEntry] = {}

    def get(self, fd: int) -> FdEntry:
        entry = self.entries.get(fd)
        if entry is None:
            raise WasiError(E.EBADF)
        return entry

    def directory(self, fd: int, right: int) -> FdEntry:
        """A directory fd holding ``right`` (path calls: ENOTDIR / ENOTCAPABLE otherwise)."""
        entry = self.get(fd)
        if not entry.is_dir:
            raise WasiError(ENOTDIR)
        if entry.rights_base & right != right:
            raise WasiError(E.ENOTCAPABLE)
        return entry

    def add(self, entry: FdEntry) -> int:
        """Insert at the lowest free number; EMFILE (entry released) past ``max_fds``."""
        if len(self.entries) >= self.max_fds:
            entry.release()
            raise WasiError(EMFILE)
        fd = 0
        while fd in self.entries:
            fd += 1
        self.entries[fd] = entry
        return fd

    def close(self, fd: int) -> None:
        entry = self.get(fd)
        del self.entries[fd]
        entry.release()

    def renumber(self, old: int, new: int) -> None:
        """Move ``old`` onto ``new`` (which must be open, and is closed first)."""
        entry = self.get(old)
        target = self.get(new)
        if old == new:
            return
        target.release()
        self.entries[new] = entry
        del self.entries[old]

    def close_all(self) -> None:
        entries, self.entries = self.entries, {}
        for entry in entries.values():
            entry.release()


# What WasiConfig.stdin/stdout/stderr may hold (checked at run time: it comes from embedders).
StdioMode = bytes | bytearray | memoryview | str | None


def stdio_entry(which: int, mode: StdioMode) -> FdEntry:
    """fd 0/1/2: ``"inherit"`` (the host's own fd, never closed by us), bytes, or a bytearray."""
    if mode == "inherit":
        try:
            ftype = filetype_of(os.fstat(which).st_mode)
        except OSError:
            ftype = T.FILETYPE_UNKNOWN
        rights = T.RIGHTS_FILE if ftype == T.FILETYPE_REGULAR_FILE else T.RIGHTS_STREAM
        return FdEntry(ftype, rights, 0, host_fd=which, owns_fd=False)
    if which == 0:
        data = b"" if mode is None else mode
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("stdin must be bytes or 'inherit'")
        return FdEntry(T.FILETYPE_UNKNOWN, T.RIGHTS_STREAM, 0, fed=FedInput(bytes(data)))
    if mode is None:
        mode = bytearray()
    if not isinstance(mode, bytearray):
        raise TypeError("stdout/stderr must be a bytearray (captured) or 'inherit'")
    return FdEntry(T.FILETYPE_UNKNOWN, T.RIGHTS_STREAM, 0, sink=mode)


def socket_entry(sock: socket.socket) -> FdEntry:
    ftype = T.FILETYPE_SOCKET_DGRAM if sock.type == socket.SOCK_DGRAM \
        else T.FILETYPE_SOCKET_STREAM
    return FdEntry(ftype, T.RIGHTS_SOCKET, 0, host_fd=sock.fileno(), sock=sock)
