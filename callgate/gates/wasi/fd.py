"""fd_* gates: reading, writing, seeking and describing open fds.

Every gate first finds the entry (EBADF if there is none), then checks the fd's
rights (EBADF if one is missing, as wasmtime answers), then acts on the host fd.
"""

from __future__ import annotations

import fcntl
import os
import select

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import types as T
from callgate.gates.wasi.capfs import STAT_SYSCALLS, futimens
from callgate.gates.wasi.fdtable import FdEntry, filetype_of
from callgate.gates.wasi.gate import WasiError, signed64, wasi_gate
from callgate.gates.wasi.state import WasiCall

R = T.R
EISDIR = E.WASI_ERRNO["EISDIR"]
ESPIPE = E.WASI_ERRNO["ESPIPE"]
ENOTSUP = E.WASI_ERRNO["ENOTSUP"]
ENAMETOOLONG = E.WASI_ERRNO["ENAMETOOLONG"]
MAX_IO = 1 << 24  # one gate call moves at most 16 MiB; callers loop, as for a short read
_I64_MAX = (1 << 63) - 1
_ADVICE = (os.POSIX_FADV_NORMAL, os.POSIX_FADV_SEQUENTIAL, os.POSIX_FADV_RANDOM,
           os.POSIX_FADV_WILLNEED, os.POSIX_FADV_DONTNEED, os.POSIX_FADV_NOREUSE)


def _entry(call: WasiCall, fd: int, rights: int) -> FdEntry:
    entry: FdEntry = call.state.table.get(fd)
    entry.need(rights)
    return entry


def _seekable(call: WasiCall, fd: int, right: int) -> FdEntry:
    """A seekable fd: a stream is ESPIPE before any rights check (it could never seek)."""
    entry: FdEntry = call.state.table.get(fd)
    if not entry.is_dir and not entry.seekable:
        raise WasiError(ESPIPE)
    entry.need(right)
    _not_dir(entry)
    return entry


def _not_dir(entry: FdEntry) -> None:
    if entry.is_dir:
        raise WasiError(EISDIR)


def scatter(call: WasiCall, vecs: list[tuple[int, int]], data: bytes) -> None:
    """Spread ``data`` over the (already validated) iovecs in order."""
    mem = call.mem
    pos = 0
    for buf, length in vecs:
        if pos >= len(data):
            break
        chunk = data[pos:pos + length]
        mem.write(buf, chunk)
        pos += len(chunk)


def gather(call: WasiCall, iovs: int, count: int) -> bytes:
    """Concatenate the bytes of a validated ciovec array (at most MAX_IO)."""
    mem = call.mem
    out = bytearray()
    for buf, length in mem.iovecs(iovs, count):
        take = min(length, MAX_IO - len(out))
        out += mem.read(buf, take)
        if len(out) >= MAX_IO:
            break
    return bytes(out)


def _capacity(vecs: list[tuple[int, int]]) -> int:
    return min(MAX_IO, sum(length for _, length in vecs))


def wait_ready(call: WasiCall, entry: FdEntry, mask: int) -> None:
    """Before a blocking read/write on a host stream, wait no longer than the call's deadline.

    Python code cannot be interrupted by wasmtime's epochs, so a guest reading an
    idle pipe or socket would otherwise outlive ``Limits.timeout``.
    """
    plugin = call.plugin
    if entry.host_fd is None or entry.flags & T.FDFLAGS_NONBLOCK or \
            entry.filetype in (T.FILETYPE_REGULAR_FILE, T.FILETYPE_DIRECTORY):
        return
    while (left := plugin.remaining_time()) is not None:
        poller = select.poll()
        poller.register(entry.host_fd, mask)
        if poller.poll(left * 1000 + 1):
            return
        plugin.check_deadline()


def read_entry(entry: FdEntry, n: int, offset: int | None = None) -> bytes:
    """Read up to ``n`` bytes from whatever the entry is (file, stream, fed stdin)."""
    if entry.fed is not None:
        return entry.fed.read(n)
    if entry.sock is not None:
        return entry.sock.recv(n)
    if offset is None:
        return os.read(entry.fd(), n)
    return os.pread(entry.fd(), n, offset)


def write_entry(call: WasiCall, entry: FdEntry, data: bytes, offset: int | None = None) -> int:
    """Write guest bytes (charged to the plugin's output cap first)."""
    if data:
        call.plugin.charge_output(len(data))
    if entry.sink is not None:
        entry.sink += data
        return len(data)
    if entry.fed is not None:
        raise WasiError(E.EBADF)
    if entry.sock is not None:
        return entry.sock.send(data)
    if offset is None:
        return os.write(entry.fd(), data)
    return os.pwrite(entry.fd(), data, offset)


@wasi_gate("i32 i32 i32 i32", syscalls={"read", "recvfrom", "poll", "ppoll"})
def fd_read(call: WasiCall, fd: int, iovs: int, iovs_len: int, ret: int) -> None:
    """Read into an iovec array."""
    entry = _entry(call, fd, R["FD_READ"])
    _not_dir(entry)
    vecs = call.mem.iovecs(iovs, iovs_len)
    call.mem.check(ret, 4)
    wait_ready(call, entry, select.POLLIN)
    data = read_entry(entry, _capacity(vecs))
    scatter(call, vecs, data)
    call.mem.set_u32(ret, len(data))


@wasi_gate("i32 i32 i32 i64 i32", syscalls={"pread64"})
def fd_pread(call: WasiCall, fd: int, iovs: int, iovs_len: int, offset: int, ret: int) -> None:
    """Read at an offset without moving the file position."""
    entry = _entry(call, fd, R["FD_READ"] | R["FD_SEEK"])
    _not_dir(entry)
    if not entry.seekable:
        raise WasiError(ESPIPE)
    if offset > _I64_MAX:
        raise WasiError(E.EINVAL)
    vecs = call.mem.iovecs(iovs, iovs_len)
    call.mem.check(ret, 4)
    data = read_entry(entry, _capacity(vecs), offset)
    scatter(call, vecs, data)
    call.mem.set_u32(ret, len(data))


@wasi_gate("i32 i32 i32 i32", syscalls={"write", "sendto", "poll", "ppoll"})
def fd_write(call: WasiCall, fd: int, iovs: int, iovs_len: int, ret: int) -> None:
    """Write a ciovec array (appending if the fd has the APPEND flag)."""
    entry = _entry(call, fd, R["FD_WRITE"])
    _not_dir(entry)
    data = gather(call, iovs, iovs_len)
    call.mem.check(ret, 4)
    wait_ready(call, entry, select.POLLOUT)
    call.mem.set_u32(ret, write_entry(call, entry, data))


@wasi_gate("i32 i32 i32 i64 i32", syscalls={"pwrite64"})
def fd_pwrite(call: WasiCall, fd: int, iovs: int, iovs_len: int, offset: int, ret: int) -> None:
    """Write at an offset without moving the file position."""
    entry = _entry(call, fd, R["FD_WRITE"] | R["FD_SEEK"])
    _not_dir(entry)
    if not entry.seekable:
        raise WasiError(ESPIPE)
    if offset > _I64_MAX:
        raise WasiError(E.EINVAL)
    data = gather(call, iovs, iovs_len)
    call.mem.check(ret, 4)
    call.mem.set_u32(ret, write_entry(call, entry, data, offset))


@wasi_gate("i32 i64 i32 i32", syscalls={"lseek"})
def fd_seek(call: WasiCall, fd: int, offset: int, whence: int, ret: int) -> None:
    """Move the file position; EINVAL for a bad whence or a negative result."""
    delta = signed64(offset)
    right = R["FD_TELL"] if delta == 0 and whence == T.WHENCE_CUR else R["FD_SEEK"]
    entry = _seekable(call, fd, right)
    if whence not in (T.WHENCE_SET, T.WHENCE_CUR, T.WHENCE_END):
        raise WasiError(E.EINVAL)
    call.mem.check(ret, 8)
    call.mem.set_u64(ret, os.lseek(entry.fd(), delta, whence))


@wasi_gate("i32 i32", syscalls={"lseek"})
def fd_tell(call: WasiCall, fd: int, ret: int) -> None:
    """The current file position."""
    entry = _seekable(call, fd, R["FD_TELL"])
    call.mem.check(ret, 8)
    call.mem.set_u64(ret, os.lseek(entry.fd(), 0, os.SEEK_CUR))


@wasi_gate("i32", syscalls={"close"}, uses_memory=False)
def fd_close(call: WasiCall, fd: int) -> None:
    """Close an fd (preopens too); its host fd is closed with it."""
    call.state.table.close(fd)


@wasi_gate("i32 i32", syscalls={"close"}, uses_memory=False)
def fd_renumber(call: WasiCall, fd: int, to: int) -> None:
    """Atomically replace ``to`` (which must be open) with ``fd``."""
    call.state.table.renumber(fd, to)


def _sync(call: WasiCall, fd: int, right: int, data_only: bool) -> None:
    entry = _entry(call, fd, right)
    if entry.host_fd is None:
        raise WasiError(E.EINVAL)  # a byte buffer, like a pipe, cannot be synced
    (os.fdatasync if data_only else os.fsync)(entry.host_fd)


@wasi_gate("i32", syscalls={"fdatasync"}, uses_memory=False)
def fd_datasync(call: WasiCall, fd: int) -> None:
    """Flush the file's data to storage."""
    _sync(call, fd, R["FD_DATASYNC"], True)


@wasi_gate("i32", syscalls={"fsync"}, uses_memory=False)
def fd_sync(call: WasiCall, fd: int) -> None:
    """Flush the file's data and metadata to storage."""
    _sync(call, fd, R["FD_SYNC"], False)


@wasi_gate("i32 i32")
def fd_fdstat_get(call: WasiCall, fd: int, ret: int) -> None:
    """Filetype, fdflags and rights of an fd."""
    entry = call.state.table.get(fd)
    call.mem.write(ret, T.FDSTAT.pack(entry.filetype, entry.flags, entry.rights_base,
                                         entry.rights_inheriting))


@wasi_gate("i32 i32", syscalls={"fcntl"}, uses_memory=False)
def fd_fdstat_set_flags(call: WasiCall, fd: int, flags: int) -> None:
    """Change APPEND and NONBLOCK; the sync flags cannot change after open (ENOTSUP)."""
    entry = _entry(call, fd, R["FD_FDSTAT_SET_FLAGS"])
    if flags & ~T.FDFLAGS_ALL:
        raise WasiError(E.EINVAL)
    sync = T.FDFLAGS_DSYNC | T.FDFLAGS_RSYNC | T.FDFLAGS_SYNC
    if (flags ^ entry.flags) & sync:
        raise WasiError(ENOTSUP)
    # Inherited stdio is the host's own fd: its file status flags are shared with the
    # host process, so a guest may not make the host's terminal non-blocking.
    if entry.host_fd is not None and entry.owns_fd:
        host = fcntl.fcntl(entry.host_fd, fcntl.F_GETFL)
        host &= ~(os.O_APPEND | os.O_NONBLOCK)
        host |= (os.O_APPEND if flags & T.FDFLAGS_APPEND else 0)
        host |= (os.O_NONBLOCK if flags & T.FDFLAGS_NONBLOCK else 0)
        fcntl.fcntl(entry.host_fd, fcntl.F_SETFL, host)
    entry.flags = flags


@wasi_gate("i32 i64 i64", uses_memory=False)
def fd_fdstat_set_rights(call: WasiCall, fd: int, base: int, inheriting: int) -> None:
    """Drop rights; asking for a right the fd does not hold is ENOTCAPABLE."""
    entry = call.state.table.get(fd)
    if base & ~entry.rights_base or inheriting & ~entry.rights_inheriting:
        raise WasiError(E.ENOTCAPABLE)
    entry.rights_base = base
    entry.rights_inheriting = inheriting


def pack_filestat(st: os.stat_result) -> bytes:
    return T.FILESTAT.pack(st.st_dev, st.st_ino, filetype_of(st.st_mode), st.st_nlink,
                           st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


@wasi_gate("i32 i32", syscalls=STAT_SYSCALLS)
def fd_filestat_get(call: WasiCall, fd: int, ret: int) -> None:
    """Attributes of an open file (stdio reports only its type, as in wasmtime)."""
    entry = call.state.table.get(fd)
    if not entry.stdio:
        entry.need(R["FD_FILESTAT_GET"])
    call.mem.check(ret, T.FILESTAT.size)
    if entry.stdio:
        call.mem.write(ret, entry.stdio_filestat())
        return
    call.mem.write(ret, pack_filestat(os.fstat(entry.fd())))


@wasi_gate("i32 i64", syscalls={"ftruncate"}, uses_memory=False)
def fd_filestat_set_size(call: WasiCall, fd: int, size: int) -> None:
    """Truncate or extend (with zeros) an open file."""
    entry = _entry(call, fd, R["FD_FILESTAT_SET_SIZE"])
    _not_dir(entry)
    if size > _I64_MAX:
        raise WasiError(E.EINVAL)
    os.ftruncate(entry.fd(), size)


def time_args(atim: int, mtim: int, fst_flags: int) -> tuple[int | None, int | None]:
    """fstflags -> (atime, mtime) for capfs: None = leave, -1 = now; EINVAL if contradictory."""
    if fst_flags & ~T.FSTFLAGS_ALL:
        raise WasiError(E.EINVAL)
    if (fst_flags & T.FSTFLAGS_ATIM and fst_flags & T.FSTFLAGS_ATIM_NOW) or \
            (fst_flags & T.FSTFLAGS_MTIM and fst_flags & T.FSTFLAGS_MTIM_NOW):
        raise WasiError(E.EINVAL)

    def pick(value: int, given: int, now: int) -> int | None:
        if fst_flags & now:
            return -1
        if fst_flags & given:
            if value > _I64_MAX:
                raise WasiError(E.EINVAL)
            return value
        return None

    return (pick(atim, T.FSTFLAGS_ATIM, T.FSTFLAGS_ATIM_NOW),
            pick(mtim, T.FSTFLAGS_MTIM, T.FSTFLAGS_MTIM_NOW))


@wasi_gate("i32 i64 i64 i32", syscalls={"utimensat"}, uses_memory=False)
def fd_filestat_set_times(call: WasiCall, fd: int, atim: int, mtim: int, fst_flags: int) -> None:
    """Set access/modification times of an open file per fstflags."""
    entry = _entry(call, fd, R["FD_FILESTAT_SET_TIMES"])
    if entry.readonly:
        raise WasiError(E.EPERM)  # futimens works on a read-only fd; the preopen says no
    atime, mtime = time_args(atim, mtim, fst_flags)
    futimens(entry.fd(), atime, mtime)


@wasi_gate("i32 i64 i64 i32", syscalls={"fadvise64"}, uses_memory=False)
def fd_advise(call: WasiCall, fd: int, offset: int, length: int, advice: int) -> None:
    """Pass an access-pattern hint to the host."""
    entry = _entry(call, fd, R["FD_ADVISE"])
    _not_dir(entry)
    if advice > T.ADVICE_MAX or offset > _I64_MAX or length > _I64_MAX:
        raise WasiError(E.EINVAL)
    if not entry.seekable:
        raise WasiError(ESPIPE)
    os.posix_fadvise(entry.fd(), offset, length, _ADVICE[advice])


@wasi_gate("i32 i64 i64", syscalls={"fallocate"}, uses_memory=False)
def fd_allocate(call: WasiCall, fd: int, offset: int, length: int) -> None:
    """Ensure storage for ``[offset, offset+len)``, growing the file if needed."""
    entry = _entry(call, fd, R["FD_ALLOCATE"])
    _not_dir(entry)
    if offset > _I64_MAX or length > _I64_MAX or offset + length > _I64_MAX:
        raise WasiError(E.EINVAL)
    if not entry.seekable:
        raise WasiError(ESPIPE)
    if length == 0:
        raise WasiError(E.EINVAL)
    os.posix_fallocate(entry.fd(), offset, length)


@wasi_gate("i32 i32")
def fd_prestat_get(call: WasiCall, fd: int, ret: int) -> None:
    """Describe a preopened directory (EBADF for any other fd)."""
    entry = call.state.table.get(fd)
    if entry.preopen is None:
        raise WasiError(E.EBADF)
    call.mem.write(ret, T.PRESTAT.pack(T.PREOPENTYPE_DIR, len(entry.preopen.encode())))


@wasi_gate("i32 i32 i32")
def fd_prestat_dir_name(call: WasiCall, fd: int, buf: int, buf_len: int) -> None:
    """The guest path of a preopen; ENAMETOOLONG if the buffer is too small.

    The whole declared buffer must lie in memory (EFAULT otherwise), even though
    only the name's bytes are written: a buffer past the end is a guest bug.
    """
    call.mem.check(buf, buf_len)
    entry = call.state.table.get(fd)
    if entry.preopen is None:
        raise WasiError(E.EBADF)
    name = entry.preopen.encode()
    if buf_len < len(name):
        raise WasiError(ENAMETOOLONG)
    call.mem.write(buf, name)


def _listing(entry: FdEntry, cookie: int) -> list[tuple[bytes, int, int]]:
    """``.``, ``..`` and the directory's entries; re-read when a walk starts (cookie 0)."""
    if cookie == 0 or entry.dir_cache is None:
        fd = entry.fd()
        ino = os.fstat(fd).st_ino
        rows = [(b".", ino, T.FILETYPE_DIRECTORY), (b"..", ino, T.FILETYPE_DIRECTORY)]
        with os.scandir(fd) as it:
            for item in it:
                rows.append((os.fsencode(item.name), item.inode(), _dirent_type(item)))
        entry.dir_cache = rows
    return entry.dir_cache


def _dirent_type(item: os.DirEntry[str]) -> int:
    if item.is_symlink():
        return T.FILETYPE_SYMBOLIC_LINK
    if item.is_dir(follow_symlinks=False):
        return T.FILETYPE_DIRECTORY
    if item.is_file(follow_symlinks=False):
        return T.FILETYPE_REGULAR_FILE
    try:
        return filetype_of(item.stat(follow_symlinks=False).st_mode)
    except OSError:
        return T.FILETYPE_UNKNOWN


@wasi_gate("i32 i32 i32 i64 i32",
           syscalls=STAT_SYSCALLS | {"getdents64", "fcntl", "lseek", "close"})
def fd_readdir(call: WasiCall, fd: int, buf: int, buf_len: int, cookie: int, ret: int) -> None:
    """Fill ``buf`` with dirents from ``cookie`` on; the last one may be cut off.

    Like wasmtime: ``.`` and ``..`` come first, the cookie of an entry is its
    index + 1 (``d_next``), and a full buffer (bufused == buf_len) tells the
    caller to retry with a bigger one or continue from the last whole entry.
    """
    entry = _entry(call, fd, R["FD_READDIR"])
    if not entry.is_dir:
        raise WasiError(E.WASI_ERRNO["ENOTDIR"])
    call.mem.check(buf, buf_len)
    call.mem.check(ret, 4)
    out = bytearray()
    rows = _listing(entry, cookie)
    for index in range(cookie, len(rows)):
        name, ino, dtype = rows[index]
        out += T.DIRENT.pack(index + 1, ino, len(name), dtype)
        out += name
        if len(out) >= buf_len:
            break
    used = min(len(out), buf_len)
    call.mem.write(buf, out[:used])
    call.mem.set_u32(ret, used)
