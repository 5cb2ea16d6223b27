"""path_* gates: every path is resolved beneath a directory fd by :mod:`capfs`.

A path call needs a directory fd (ENOTDIR otherwise) holding the right for the
operation (ENOTCAPABLE otherwise); anything beneath a read-only preopen refuses
to change with EPERM, as wasmtime does.
"""

from __future__ import annotations

import fcntl
import os

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import capfs, types as T
from callgate.gates.wasi.fd import ENOTSUP, check_fstflags, pack_filestat, time_args
from callgate.gates.wasi.fdtable import FdEntry, filetype_of
from callgate.gates.wasi.gate import WasiError, guest_str, wasi_gate
from callgate.gates.wasi.state import WasiCall

R = T.R
_RESOLVE = capfs.RESOLVE_SYSCALLS | capfs.STAT_SYSCALLS  # fstatat: the ELOOP check
_FOLLOW = T.LOOKUPFLAGS_SYMLINK_FOLLOW


def _dir(call: WasiCall, fd: int, right: int, *, mutates: bool = False) -> FdEntry:
    entry: FdEntry = call.state.table.directory(fd, right)
    if mutates and entry.readonly:
        raise WasiError(E.EPERM)
    return entry


def _lookup_flags(flags: int) -> bool:
    if flags & ~_FOLLOW:
        raise WasiError(E.EINVAL)
    return bool(flags & _FOLLOW)


@wasi_gate("i32 i32 i32", syscalls=_RESOLVE | {"mkdirat"})
def path_create_directory(call: WasiCall, fd: int, path: int, path_len: int) -> None:
    """mkdir beneath a directory fd."""
    entry = _dir(call, fd, R["PATH_CREATE_DIRECTORY"], mutates=True)
    capfs.mkdir_at(entry.fd(), guest_str(call, path, path_len))


@wasi_gate("i32 i32 i32", syscalls=_RESOLVE | {"unlinkat"})
def path_remove_directory(call: WasiCall, fd: int, path: int, path_len: int) -> None:
    """rmdir beneath a directory fd (ENOTEMPTY unless empty)."""
    entry = _dir(call, fd, R["PATH_REMOVE_DIRECTORY"], mutates=True)
    capfs.rmdir_at(entry.fd(), guest_str(call, path, path_len))


@wasi_gate("i32 i32 i32", syscalls=_RESOLVE | {"unlinkat"})
def path_unlink_file(call: WasiCall, fd: int, path: int, path_len: int) -> None:
    """unlink a non-directory beneath a directory fd."""
    entry = _dir(call, fd, R["PATH_UNLINK_FILE"], mutates=True)
    capfs.unlink_at(entry.fd(), guest_str(call, path, path_len))


@wasi_gate("i32 i32 i32 i32 i32", syscalls=_RESOLVE)
def path_filestat_get(call: WasiCall, fd: int, flags: int, path: int, path_len: int,
                      ret: int) -> None:
    """stat a path (its symlink itself unless SYMLINK_FOLLOW)."""
    entry = _dir(call, fd, R["PATH_FILESTAT_GET"])
    follow = _lookup_flags(flags)
    text = guest_str(call, path, path_len)
    call.mem.check(ret, T.FILESTAT.size)
    call.mem.write(ret, pack_filestat(capfs.stat_at(entry.fd(), text, follow=follow)))


@wasi_gate("i32 i32 i32 i32 i64 i64 i32", syscalls=_RESOLVE | {"utimensat"})
def path_filestat_set_times(call: WasiCall, fd: int, flags: int, path: int, path_len: int,
                            atim: int, mtim: int, fst_flags: int) -> None:
    """Set a path's times per fstflags (its symlink's unless SYMLINK_FOLLOW)."""
    entry = _dir(call, fd, R["PATH_FILESTAT_SET_TIMES"])
    follow = _lookup_flags(flags)
    text = guest_str(call, path, path_len)
    check_fstflags(fst_flags)  # EINVAL before a read-only EPERM, as in wasmtime
    if entry.readonly:
        raise WasiError(E.EPERM)
    atime, mtime = time_args(atim, mtim, fst_flags)
    capfs.utimes_at(entry.fd(), text, atime, mtime, follow=follow)


@wasi_gate("i32 i32 i32 i32 i32 i32 i32", syscalls=_RESOLVE | {"linkat"})
def path_link(call: WasiCall, old_fd: int, old_flags: int, old_path: int, old_len: int,
              new_fd: int, new_path: int, new_len: int) -> None:
    """Hard link; SYMLINK_FOLLOW is refused with EINVAL, as in wasmtime."""
    # A new name for a file of a read-only preopen would make it writable elsewhere.
    old = _dir(call, old_fd, R["PATH_LINK_SOURCE"], mutates=True)
    new = _dir(call, new_fd, R["PATH_LINK_TARGET"], mutates=True)
    if _lookup_flags(old_flags):
        raise WasiError(E.EINVAL)
    capfs.link_at(old.fd(), guest_str(call, old_path, old_len),
                  new.fd(), guest_str(call, new_path, new_len))


@wasi_gate("i32 i32 i32 i32 i32 i32", syscalls=_RESOLVE | {"renameat", "renameat2"})
def path_rename(call: WasiCall, fd: int, old_path: int, old_len: int, new_fd: int, new_path: int,
                new_len: int) -> None:
    """Rename within or between directory fds (never out of their preopens)."""
    old = _dir(call, fd, R["PATH_RENAME_SOURCE"], mutates=True)
    new = _dir(call, new_fd, R["PATH_RENAME_TARGET"], mutates=True)
    capfs.rename_at(old.fd(), guest_str(call, old_path, old_len),
                    new.fd(), guest_str(call, new_path, new_len))


@wasi_gate("i32 i32 i32 i32 i32", syscalls=_RESOLVE | {"symlinkat"})
def path_symlink(call: WasiCall, old_path: int, old_len: int, fd: int, new_path: int,
                 new_len: int) -> None:
    """Create a symlink holding ``old_path`` (any text; following it stays beneath)."""
    entry = _dir(call, fd, R["PATH_SYMLINK"], mutates=True)
    target = guest_str(call, old_path, old_len)
    capfs.symlink_at(target, entry.fd(), guest_str(call, new_path, new_len))


@wasi_gate("i32 i32 i32 i32 i32 i32", syscalls=_RESOLVE | {"readlinkat"})
def path_readlink(call: WasiCall, fd: int, path: int, path_len: int, buf: int, buf_len: int,
                  ret: int) -> None:
    """A symlink's content, cut to ``buf_len`` bytes."""
    entry = _dir(call, fd, R["PATH_READLINK"])
    target = capfs.readlink_at(entry.fd(), guest_str(call, path, path_len))
    call.mem.check(buf, buf_len)
    call.mem.check(ret, 4)
    data = target[:buf_len]
    call.mem.write(buf, data)
    call.mem.set_u32(ret, len(data))


def _access_mode(rights: int, oflags: int) -> tuple[bool, bool]:
    """(readable, writable), as wasmtime opens: for writing with FD_WRITE, CREAT or TRUNC;
    for reading with FD_READ or without FD_WRITE (a file opened with no rights reads)."""
    writable = bool(rights & R["FD_WRITE"] or oflags & (T.OFLAGS_CREAT | T.OFLAGS_TRUNC))
    return bool(rights & R["FD_READ"]) or not rights & R["FD_WRITE"], writable


def _host_mode(readable: bool, writable: bool) -> int:
    if writable:
        return os.O_RDWR if readable else os.O_WRONLY
    return os.O_RDONLY


_FDFLAG_HOST = ((T.FDFLAGS_APPEND, os.O_APPEND), (T.FDFLAGS_NONBLOCK, os.O_NONBLOCK))


@wasi_gate("i32 i32 i32 i32 i32 i64 i64 i32 i32", syscalls=_RESOLVE | {"fcntl"})
def path_open(call: WasiCall, fd: int, dirflags: int, path: int, path_len: int, oflags: int,
              rights_base: int, rights_inheriting: int, fdflags: int, ret: int) -> None:
    """Open beneath a directory fd.

    As in wasmtime, the requested rights only choose the host access mode (FD_WRITE,
    CREAT or TRUNC -> write; FD_READ, or no FD_WRITE -> read); what the new fd may do
    follows from that mode and its type, and fd_fdstat_get reports wasmtime's fixed
    sets. A directory has no fdflags. Without SYMLINK_FOLLOW a final symlink is ELOOP
    (O_NOFOLLOW).
    """
    entry = _dir(call, fd, R["PATH_OPEN"])
    follow = _lookup_flags(dirflags)
    if oflags & ~T.OFLAGS_ALL or fdflags & ~T.FDFLAGS_ALL:
        raise WasiError(E.EINVAL)
    if fdflags & T.FDFLAGS_SYNCS:
        raise WasiError(ENOTSUP)  # as wasmtime, before the path is looked at
    text = guest_str(call, path, path_len)
    call.mem.check(ret, 4)
    readable, writable = _access_mode(rights_base, oflags)
    if entry.readonly and writable:  # CREAT and TRUNC open for writing too
        raise WasiError(E.EPERM)
    flags = _host_mode(readable, writable)
    flags |= os.O_CREAT if oflags & T.OFLAGS_CREAT else 0
    flags |= os.O_DIRECTORY if oflags & T.OFLAGS_DIRECTORY else 0
    flags |= os.O_EXCL if oflags & T.OFLAGS_EXCL else 0
    flags |= os.O_TRUNC if oflags & T.OFLAGS_TRUNC else 0
    for wasi_flag, host_flag in _FDFLAG_HOST:
        flags |= host_flag if fdflags & wasi_flag else 0
    # Always open non-blocking, so a FIFO cannot hang the host in open(2); then restore
    # the blocking mode the guest asked for.
    host_fd = capfs.open_beneath(entry.fd(), text, flags | os.O_NONBLOCK, 0o666, follow=follow)
    try:
        ftype = filetype_of(os.fstat(host_fd).st_mode)
        if not fdflags & T.FDFLAGS_NONBLOCK:
            # fcntl, as declared above: os.set_blocking would use ioctl(FIONBIO), a
            # syscall the kernel layer has no reason to allow.
            status = fcntl.fcntl(host_fd, fcntl.F_GETFL)
            fcntl.fcntl(host_fd, fcntl.F_SETFL, status & ~os.O_NONBLOCK)
    except BaseException:
        os.close(host_fd)
        raise
    if ftype == T.FILETYPE_DIRECTORY:
        new = FdEntry(ftype, T.RIGHTS_DIRECTORY, T.SHOWN_DIRECTORY, T.SHOWN_DIRECTORY,
                      host_fd=host_fd, readonly=entry.readonly)
    else:
        allowed = T.RIGHTS_FILE if ftype == T.FILETYPE_REGULAR_FILE else T.RIGHTS_STREAM
        allowed &= ~(0 if readable else R["FD_READ"]) & ~(0 if writable else R["FD_WRITE"])
        shown = T.shown_file_rights(readable, writable)
        new = FdEntry(ftype, allowed, shown, shown, host_fd=host_fd, flags=fdflags,
                      readonly=entry.readonly)
    call.mem.set_u32(ret, call.state.table.add(new))
