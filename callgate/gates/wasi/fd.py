"""fd_* gates: reading, writing, seeking and describing open fds.

Every gate first finds the entry (EBADF if there is none), then checks the fd's
rights (EBADF if one is missing, as wasmtime answers), then acts on the host fd.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import socket
import time

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import types as T
from callgate.gates.wasi.capfs import STAT_SYSCALLS, futimens
from callgate.gates.wasi.fdtable import ENOTDIR, FdEntry, filetype_of
from callgate.gates.wasi.gate import WasiError, signed64, wasi_gate
from callgate.gates.wasi.identity import GUEST_DEV, guest_ino
from callgate.gates.wasi.state import WasiCall

R = T.R
EISDIR = E.WASI_ERRNO["EISDIR"]
ESPIPE = E.WASI_ERRNO["ESPIPE"]
ENOTSUP = E.WASI_ERRNO["ENOTSUP"]
EAGAIN = E.WASI_ERRNO["EAGAIN"]
ENAMETOOLONG = E.WASI_ERRNO["ENAMETOOLONG"]
# What one gate call may cost the host (docs/wasi.md, "Limits inside gates"):
IOV_MAX = 1024          # iovecs per call, Linux's UIO_MAXIOV: EINVAL past it
MAX_IO = 1 << 24        # bytes one call moves at most (16 MiB); callers loop, as for a short read
READ_CHUNK = 1 << 16    # host buffer of one read(2): a read allocates what it moves, in chunks
PIPE_PIECE = select.PIPE_BUF  # what a pipe that polls writable takes without blocking
SOCK_PIECE = 1 << 16    # what a stream-socket write gathers from guest memory at a time
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


# -- iovecs ----------------------------------------------------------------------------------

def iovecs(call: WasiCall, ptr: int, count: int) -> list[tuple[int, int]]:
    """A validated (c)iovec array: EFAULT if the array is not all in memory, else EINVAL
    past :data:`IOV_MAX` entries (Linux's readv and writev limit), either answered
    before anything proportional to ``count`` is read or built; then EFAULT for any
    buffer outside memory."""
    mem = call.mem
    mem.check(ptr, count * T.CIOVEC.size)
    if count > IOV_MAX:
        raise WasiError(E.EINVAL)
    return mem.iovecs(ptr, count)


def first_buffer(call: WasiCall, ptr: int, count: int) -> list[tuple[int, int]]:
    """What one fd_read/fd_write moves, as in wasmtime: the validated array's first
    non-empty buffer only (the guest's libc loops on the short count)."""
    return next(([vec] for vec in iovecs(call, ptr, count) if vec[1]), [])


def capacity(vecs: list[tuple[int, int]]) -> int:
    """Bytes one call moves through ``vecs``: their total, at most :data:`MAX_IO`."""
    return min(MAX_IO, sum(length for _, length in vecs))


class Scatter:
    """Guest iovecs filled in order, a chunk at a time."""

    __slots__ = ("_at", "_mem", "_off", "_vecs")

    def __init__(self, call: WasiCall, vecs: list[tuple[int, int]]) -> None:
        self._mem = call.mem
        self._vecs = vecs
        self._at = 0    # current iovec
        self._off = 0   # bytes already in it

    def put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            buf, length = self._vecs[self._at]
            n = min(length - self._off, len(view))
            if n:
                self._mem.write(buf + self._off, view[:n])
                view = view[n:]
                self._off += n
            if self._off == length:
                self._at += 1
                self._off = 0


class Gather:
    """Guest ciovecs read in order, a piece at a time (so a write that moves little
    copies little)."""

    __slots__ = ("_at", "_mem", "_off", "_vecs")

    def __init__(self, call: WasiCall, vecs: list[tuple[int, int]]) -> None:
        self._mem = call.mem
        self._vecs = vecs
        self._at = 0
        self._off = 0

    def take(self, limit: int) -> bytes:
        """The next at most ``limit`` bytes (fewer only at the end of the array)."""
        out = bytearray()
        while len(out) < limit and self._at < len(self._vecs):
            buf, length = self._vecs[self._at]
            n = min(length - self._off, limit - len(out))
            out += self._mem.read(buf + self._off, n)
            self._off += n
            if self._off == length:
                self._at += 1
                self._off = 0
        return bytes(out)


def guest_views(call: WasiCall, vecs: list[tuple[int, int]], limit: int) -> list[memoryview]:
    """Writable views of the (validated) guest buffers, ``limit`` bytes in all, for a host
    call that fills them in place (``recvmsg_into``). Valid only during this gate call."""
    mem = call.mem
    views = []
    for buf, length in vecs:
        n = min(length, limit)
        if n:
            views.append(memoryview((ctypes.c_char * n).from_address(mem.base + buf)).cast("B"))
            limit -= n
    return views


# -- waiting ---------------------------------------------------------------------------------

def is_stream(entry: FdEntry) -> bool:
    """A host fd whose reads and writes can block (pipe, FIFO, tty, socket)."""
    return entry.host_fd is not None and entry.filetype not in (
        T.FILETYPE_REGULAR_FILE, T.FILETYPE_BLOCK_DEVICE, T.FILETYPE_DIRECTORY)


def ready(call: WasiCall, fd: int, mask: int, wait: bool = True) -> bool:
    """Whether ``fd`` is ready for ``mask`` (or hung up, or in error).

    With ``wait`` the gate blocks until it is, but never past the call's deadline:
    Python code cannot be interrupted by wasmtime's epochs, so this is where a gate
    honours ``Limits.timeout`` (``DeadlineExceeded`` from ``check_deadline``).
    Without a deadline it waits as long as a blocking syscall would. Without
    ``wait`` (a NONBLOCK fd, or a write that already made progress) it only looks.
    """
    poller = select.poll()
    poller.register(fd, mask)
    if not wait:
        return bool(poller.poll(0))
    plugin = call.plugin
    while True:
        left = plugin.remaining_time()
        if poller.poll(None if left is None else left * 1000 + 1):
            return True
        plugin.check_deadline()


def wait_ready(call: WasiCall, entry: FdEntry, mask: int) -> None:
    """Before a read/write on a host stream, wait no longer than the call's deadline;
    EAGAIN at once if the guest made the fd non-blocking and it is not ready."""
    if not is_stream(entry):
        return
    if not ready(call, entry.fd(), mask, wait=not entry.flags & T.FDFLAGS_NONBLOCK):
        raise WasiError(EAGAIN)


# -- reading ---------------------------------------------------------------------------------

def read_into(call: WasiCall, entry: FdEntry, vecs: list[tuple[int, int]],
              offset: int | None = None) -> int:
    """Read into the guest's iovecs from whatever the entry is; the byte count.

    At most :data:`MAX_IO` bytes; host memory is one :data:`READ_CHUNK` at a time,
    however large the iovecs: a stream gives one chunk per call (a short read), a file
    is read chunk by chunk until the iovecs are full or it ends.
    """
    want = capacity(vecs)
    out = Scatter(call, vecs)
    if entry.fed is not None:
        data = entry.fed.read(want)
        out.put(data)
        return len(data)
    fd = entry.fd()
    if want == 0:
        return 0
    if is_stream(entry):
        n = min(want, READ_CHUNK)
        while True:
            wait_ready(call, entry, select.POLLIN)
            try:
                data = os.read(fd, n) if entry.sock is None else \
                    entry.sock.recv(n, socket.MSG_DONTWAIT)
                break
            except BlockingIOError:
                if entry.flags & T.FDFLAGS_NONBLOCK:
                    raise
                call.plugin.check_deadline()  # another reader took it: wait again
        out.put(data)
        return len(data)
    done = 0
    while done < want:
        if done:
            call.plugin.check_deadline()  # a slow file system must not outlast the call
        n = min(want - done, READ_CHUNK)
        data = os.read(fd, n) if offset is None else os.pread(fd, n, offset + done)
        out.put(data)
        done += len(data)
        if len(data) < n:
            break
    return done


def recv_into(call: WasiCall, entry: FdEntry, sock: socket.socket, vecs: list[tuple[int, int]],
              flags: int) -> tuple[int, int]:
    """``recvmsg`` straight into guest memory, never blocking past the deadline:
    (bytes, host msg_flags). ``flags`` are host MSG_PEEK / MSG_WAITALL.

    The kernel is asked with MSG_DONTWAIT after :func:`ready` says there is data, so
    the wait is ours; MSG_WAITALL (stream sockets) becomes a loop of such waits.
    """
    views = guest_views(call, vecs, MAX_IO)
    want = sum(len(v) for v in views)
    stream = sock.type == socket.SOCK_STREAM
    if want == 0 and stream:
        return 0, 0  # as Linux: a zero-byte stream read does not wait
    nonblock = bool(entry.flags & T.FDFLAGS_NONBLOCK)
    peek = bool(flags & socket.MSG_PEEK)
    waitall = bool(flags & socket.MSG_WAITALL) and stream and not nonblock
    host_flags = (flags & ~socket.MSG_WAITALL) | socket.MSG_DONTWAIT
    fd = sock.fileno()
    got = msg_flags = 0
    while True:
        if not ready(call, fd, select.POLLIN, wait=not nonblock):
            raise WasiError(EAGAIN)
        try:
            n, _anc, msg_flags, _addr = sock.recvmsg_into(
                _skip(views, 0 if peek else got), 0, host_flags)
        except BlockingIOError:
            if nonblock:
                raise
            call.plugin.check_deadline()  # another reader took it: wait again
            continue
        got = n if peek else got + n
        if n == 0 or not waitall or got >= want:
            return got, msg_flags
        if peek:
            # Data is queued but not all of it: poll would not wait, so sleep a little.
            left = call.plugin.remaining_time()
            time.sleep(0.005 if left is None else min(0.005, left))
            call.plugin.check_deadline()


def _skip(views: list[memoryview], n: int) -> list[memoryview]:
    """``views`` without their first ``n`` bytes."""
    out = []
    for view in views:
        if n >= len(view):
            n -= len(view)
            continue
        out.append(view[n:])
        n = 0
    return out


# -- writing ---------------------------------------------------------------------------------

def write_from(call: WasiCall, entry: FdEntry, vecs: list[tuple[int, int]],
               offset: int | None = None) -> int:
    """Write guest bytes from a ciovec array (charged to the output cap before they go).

    A file, or captured stdout, takes the whole buffer (up to :data:`MAX_IO`). A stream
    takes what fits: the gate waits (no longer than the deadline) until it is writable,
    writes pieces while it stays so and returns the count, a short write, as a full
    pipe or socket buffer gives. Host memory is then one piece, not the whole array.
    """
    if entry.fed is not None:
        raise WasiError(E.EBADF)
    want = capacity(vecs)
    src = Gather(call, vecs)
    if entry.sock is not None:
        return _write_stream(call, entry, src, want, entry.sock)
    if entry.sink is None and is_stream(entry):
        return _write_stream(call, entry, src, want, None)
    data = src.take(want)
    if data:
        call.plugin.charge_output(len(data))
    if entry.sink is not None:
        entry.sink += data
        return len(data)
    if offset is None:
        return os.write(entry.fd(), data)
    return os.pwrite(entry.fd(), data, offset)


def _write_stream(call: WasiCall, entry: FdEntry, src: Gather, want: int,
                  sock: socket.socket | None) -> int:
    nonblock = bool(entry.flags & T.FDFLAGS_NONBLOCK)
    if sock is None:
        fd, piece = entry.fd(), PIPE_PIECE
    else:
        # A datagram is one send, whole; a stream socket is sent piece by piece.
        fd, piece = sock.fileno(), SOCK_PIECE if sock.type == socket.SOCK_STREAM else want
    if want == 0 and sock is None:
        return 0
    plugin = call.plugin
    done = charged = 0
    pending = b""
    while True:
        # Block (up to the deadline) only until the first byte goes; then take what fits.
        if not ready(call, fd, select.POLLOUT, wait=not (nonblock or done)):
            break
        if not pending:
            pending = src.take(piece)
        if done + len(pending) > charged:
            plugin.charge_output(done + len(pending) - charged)
            charged = done + len(pending)
        try:
            n = os.write(fd, pending) if sock is None else sock.send(pending, socket.MSG_DONTWAIT)
        except BlockingIOError:
            if done or nonblock:
                break
            call.plugin.check_deadline()  # writable, yet not for a whole piece: wait again
            continue
        except OSError:
            if done:
                break  # as write(2): the count now, the error (EPIPE ...) on the next call
            raise
        done += n
        pending = pending[n:]
        if done >= want:
            break
    if done == 0 and want:
        raise WasiError(EAGAIN)
    return done


@wasi_gate("i32 i32 i32 i32", syscalls={"read", "recvfrom", "poll", "ppoll"})
def fd_read(call: WasiCall, fd: int, iovs: int, iovs_len: int, ret: int) -> None:
    """Read into an iovec array."""
    entry = _entry(call, fd, R["FD_READ"])
    _not_dir(entry)
    vecs = first_buffer(call, iovs, iovs_len)
    call.mem.check(ret, 4)
    call.mem.set_u32(ret, read_into(call, entry, vecs))


@wasi_gate("i32 i32 i32 i64 i32", syscalls={"pread64"})
def fd_pread(call: WasiCall, fd: int, iovs: int, iovs_len: int, offset: int, ret: int) -> None:
    """Read at an offset without moving the file position."""
    entry = _entry(call, fd, R["FD_READ"] | R["FD_SEEK"])
    _not_dir(entry)
    if not entry.seekable:
        raise WasiError(ESPIPE)
    if offset > _I64_MAX:
        raise WasiError(E.EINVAL)
    vecs = first_buffer(call, iovs, iovs_len)
    call.mem.check(ret, 4)
    call.mem.set_u32(ret, read_into(call, entry, vecs, offset))


@wasi_gate("i32 i32 i32 i32", syscalls={"write", "sendto", "poll", "ppoll"})
def fd_write(call: WasiCall, fd: int, iovs: int, iovs_len: int, ret: int) -> None:
    """Write a ciovec array (appending if the fd has the APPEND flag)."""
    entry = _entry(call, fd, R["FD_WRITE"])
    _not_dir(entry)
    vecs = first_buffer(call, iovs, iovs_len)
    call.mem.check(ret, 4)
    call.mem.set_u32(ret, write_from(call, entry, vecs))


@wasi_gate("i32 i32 i32 i64 i32", syscalls={"pwrite64"})
def fd_pwrite(call: WasiCall, fd: int, iovs: int, iovs_len: int, offset: int, ret: int) -> None:
    """Write at an offset without moving the file position."""
    entry = _entry(call, fd, R["FD_WRITE"] | R["FD_SEEK"])
    _not_dir(entry)
    if not entry.seekable:
        raise WasiError(ESPIPE)
    if offset > _I64_MAX:
        raise WasiError(E.EINVAL)
    vecs = first_buffer(call, iovs, iovs_len)
    call.mem.check(ret, 4)
    call.mem.set_u32(ret, write_from(call, entry, vecs, offset))


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
    """Change APPEND and NONBLOCK; a sync flag is EINVAL (wasmtime's answer)."""
    entry = _entry(call, fd, R["FD_FDSTAT_SET_FLAGS"])
    if flags & ~T.FDFLAGS_ALL:
        raise WasiError(E.EINVAL)
    if flags & T.FDFLAGS_SYNCS:
        raise WasiError(E.EINVAL)
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
    """Rights are advisory, as in wasmtime: changing them is ENOTSUP (EBADF on stdio),
    and a program that checks for it (the wasi-testsuite's) skips what depends on it."""
    entry = call.state.table.get(fd)
    raise WasiError(E.EBADF if entry.stdio else ENOTSUP)


def pack_filestat(st: os.stat_result) -> bytes:
    """A WASI filestat; the file's identity as wasmtime gives it (see ``identity``)."""
    return T.FILESTAT.pack(GUEST_DEV, guest_ino(st.st_dev, st.st_ino), filetype_of(st.st_mode),
                           st.st_nlink, st.st_size, st.st_atime_ns, st.st_mtime_ns,
                           st.st_ctime_ns)


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


@wasi_gate("i32 i64", syscalls=STAT_SYSCALLS | {"ftruncate"}, uses_memory=False)
def fd_filestat_set_size(call: WasiCall, fd: int, size: int) -> None:
    """Truncate or extend (with zeros) an open file; growth is charged as output first."""
    entry = _entry(call, fd, R["FD_FILESTAT_SET_SIZE"])
    _not_dir(entry)
    if entry.readonly:
        raise WasiError(E.EPERM)  # as wasmtime beneath a read-only preopen
    if size > _I64_MAX:
        raise WasiError(E.EINVAL)
    growth = size - os.fstat(entry.fd()).st_size
    if growth > 0:
        # Sparse on most filesystems, but every reader (and a copy) sees the zeros.
        call.plugin.charge_output(growth)
    os.ftruncate(entry.fd(), size)


def check_fstflags(fst_flags: int) -> None:
    """EINVAL for unknown or contradictory fstflags: wasmtime's first check, before the
    fd or path is looked at."""
    if fst_flags & ~T.FSTFLAGS_ALL:
        raise WasiError(E.EINVAL)
    if (fst_flags & T.FSTFLAGS_ATIM and fst_flags & T.FSTFLAGS_ATIM_NOW) or \
            (fst_flags & T.FSTFLAGS_MTIM and fst_flags & T.FSTFLAGS_MTIM_NOW):
        raise WasiError(E.EINVAL)


def time_args(atim: int, mtim: int, fst_flags: int) -> tuple[int | None, int | None]:
    """fstflags -> (atime, mtime) for capfs: None = leave, -1 = now; EINVAL if contradictory
    or out of range."""
    check_fstflags(fst_flags)

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
    check_fstflags(fst_flags)
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


@wasi_gate("i32 i64 i64", syscalls=STAT_SYSCALLS | {"fallocate"}, uses_memory=False)
def fd_allocate(call: WasiCall, fd: int, offset: int, length: int) -> None:
    """Ensure storage for ``[offset, offset+len)``, growing the file if needed.

    The disk it may newly reserve is charged as output first (see :func:`_allocation`).
    """
    entry = _entry(call, fd, R["FD_ALLOCATE"])
    _not_dir(entry)
    if entry.readonly:
        raise WasiError(E.EPERM)  # a write, which a read-only preopen refuses
    if offset > _I64_MAX or length > _I64_MAX or offset + length > _I64_MAX:
        raise WasiError(E.EINVAL)
    if not entry.seekable:
        raise WasiError(ESPIPE)
    if length == 0:
        raise WasiError(E.EINVAL)
    charge = _allocation(os.fstat(entry.fd()), offset, length)
    if charge:
        call.plugin.charge_output(charge)
    os.posix_fallocate(entry.fd(), offset, length)


def _allocation(st: os.stat_result, offset: int, length: int) -> int:
    """An upper estimate of the bytes ``fallocate(offset, length)`` newly reserves: all
    growth past the end, plus, inside the file, no more than its unallocated bytes
    (``st_size - 512 * st_blocks``: nothing for a dense file, the holes of a sparse one)."""
    end = offset + length
    growth = max(0, end - st.st_size)
    inside = max(0, min(end, st.st_size) - offset)
    holes = max(0, st.st_size - 512 * st.st_blocks)
    return growth + min(inside, holes)


@wasi_gate("i32 i32")
def fd_prestat_get(call: WasiCall, fd: int, ret: int) -> None:
    """Describe a preopened directory (EBADF for any other fd)."""
    entry = call.state.table.get(fd)
    if entry.preopen is None:
        raise WasiError(E.EBADF)
    call.mem.write(ret, T.PRESTAT.pack(T.PREOPENTYPE_DIR, len(entry.preopen.encode())))


@wasi_gate("i32 i32 i32")
def fd_prestat_dir_name(call: WasiCall, fd: int, buf: int, buf_len: int) -> None:
    """The guest path of a preopen; ENAMETOOLONG if the buffer is too small, ENOTDIR for
    an open fd that is no preopen (wasmtime's answer; fd_prestat_get says EBADF).

    The whole declared buffer must lie in memory (EFAULT otherwise), even though
    only the name's bytes are written: a buffer past the end is a guest bug.
    """
    call.mem.check(buf, buf_len)
    entry = call.state.table.get(fd)
    if entry.preopen is None:
        raise WasiError(ENOTDIR)
    name = entry.preopen.encode()
    if buf_len < len(name):
        raise WasiError(ENAMETOOLONG)
    call.mem.write(buf, name)


def _listing(call: WasiCall, entry: FdEntry, cookie: int) -> list[tuple[bytes, int, int]]:
    """``.``, ``..`` and the directory's entries; re-read when a walk starts (cookie 0).
    A huge directory takes a while: the scan stops at the call's deadline."""
    if cookie == 0 or entry.dir_cache is None:
        fd = entry.fd()
        here = os.fstat(fd)
        ino = guest_ino(here.st_dev, here.st_ino)
        rows = [(b".", ino, T.FILETYPE_DIRECTORY), (b"..", ino, T.FILETYPE_DIRECTORY)]
        with os.scandir(fd) as it:
            for item in it:  # an entry is on the directory's device (a mount point aside)
                rows.append((os.fsencode(item.name), guest_ino(here.st_dev, item.inode()),
                             _dirent_type(item)))
                if len(rows) % 4096 == 0:
                    call.plugin.check_deadline()
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
        raise WasiError(ENOTDIR)
    call.mem.check(buf, buf_len)
    call.mem.check(ret, 4)
    out = bytearray()
    rows = _listing(call, entry, cookie)
    for index in range(cookie, len(rows)):
        name, ino, dtype = rows[index]
        out += T.DIRENT.pack(index + 1, ino, len(name), dtype)
        out += name
        if len(out) >= buf_len:
            break
    used = min(len(out), buf_len)
    call.mem.write(buf, out[:used])
    call.mem.set_u32(ret, used)
