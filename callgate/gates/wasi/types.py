"""Layouts and constants of ``wasi_snapshot_preview1.witx`` that the gates read and write.

Every struct here is little-endian with the alignment witx gives it; the sizes
are asserted so a typo cannot silently shift a field the guest reads.
"""

from __future__ import annotations

import struct

# --- filetype -------------------------------------------------------------------------------
FILETYPE_UNKNOWN = 0
FILETYPE_BLOCK_DEVICE = 1
FILETYPE_CHARACTER_DEVICE = 2
FILETYPE_DIRECTORY = 3
FILETYPE_REGULAR_FILE = 4
FILETYPE_SOCKET_DGRAM = 5
FILETYPE_SOCKET_STREAM = 6
FILETYPE_SYMBOLIC_LINK = 7

# --- flags ----------------------------------------------------------------------------------
FDFLAGS_APPEND = 1
FDFLAGS_DSYNC = 2
FDFLAGS_NONBLOCK = 4
FDFLAGS_RSYNC = 8
FDFLAGS_SYNC = 16
# Synchronised I/O: wasmtime offers none (path_open: ENOTSUP, fd_fdstat_set_flags: EINVAL).
FDFLAGS_SYNCS = FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC
FDFLAGS_ALL = 31

OFLAGS_CREAT = 1
OFLAGS_DIRECTORY = 2
OFLAGS_EXCL = 4
OFLAGS_TRUNC = 8
OFLAGS_ALL = 15

LOOKUPFLAGS_SYMLINK_FOLLOW = 1

FSTFLAGS_ATIM = 1
FSTFLAGS_ATIM_NOW = 2
FSTFLAGS_MTIM = 4
FSTFLAGS_MTIM_NOW = 8
FSTFLAGS_ALL = 15

WHENCE_SET = 0
WHENCE_CUR = 1
WHENCE_END = 2

ADVICE_MAX = 5  # normal, sequential, random, willneed, dontneed, noreuse

CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_PROCESS_CPUTIME_ID = 2
CLOCK_THREAD_CPUTIME_ID = 3

EVENTTYPE_CLOCK = 0
EVENTTYPE_FD_READ = 1
EVENTTYPE_FD_WRITE = 2
SUBCLOCKFLAGS_ABSTIME = 1
EVENTRWFLAGS_HANGUP = 1

RIFLAGS_RECV_PEEK = 1
RIFLAGS_RECV_WAITALL = 2
ROFLAGS_RECV_DATA_TRUNCATED = 1
SDFLAGS_RD = 1
SDFLAGS_WR = 2

PREOPENTYPE_DIR = 0

# --- rights ---------------------------------------------------------------------------------
_RIGHT_NAMES = (
    "FD_DATASYNC FD_READ FD_SEEK FD_FDSTAT_SET_FLAGS FD_SYNC FD_TELL FD_WRITE FD_ADVISE "
    "FD_ALLOCATE PATH_CREATE_DIRECTORY PATH_CREATE_FILE PATH_LINK_SOURCE PATH_LINK_TARGET "
    "PATH_OPEN FD_READDIR PATH_READLINK PATH_RENAME_SOURCE PATH_RENAME_TARGET PATH_FILESTAT_GET "
    "PATH_FILESTAT_SET_SIZE PATH_FILESTAT_SET_TIMES FD_FILESTAT_GET FD_FILESTAT_SET_SIZE "
    "FD_FILESTAT_SET_TIMES PATH_SYMLINK PATH_REMOVE_DIRECTORY PATH_UNLINK_FILE "
    "POLL_FD_READWRITE SOCK_SHUTDOWN SOCK_ACCEPT"
).split()
RIGHTS: dict[str, int] = {name: 1 << bit for bit, name in enumerate(_RIGHT_NAMES)}
R = RIGHTS  # short alias for the gate modules

RIGHTS_ALL = (1 << len(_RIGHT_NAMES)) - 1

# What an open regular file may be given (wasmtime offers the same set).
RIGHTS_FILE = (R["FD_DATASYNC"] | R["FD_READ"] | R["FD_SEEK"] | R["FD_FDSTAT_SET_FLAGS"]
               | R["FD_SYNC"] | R["FD_TELL"] | R["FD_WRITE"] | R["FD_ADVISE"] | R["FD_ALLOCATE"]
               | R["FD_FILESTAT_GET"] | R["FD_FILESTAT_SET_SIZE"] | R["FD_FILESTAT_SET_TIMES"]
               | R["POLL_FD_READWRITE"])
# A stream (pipe, tty, socket, captured stdio) cannot seek.
RIGHTS_STREAM = RIGHTS_FILE & ~(R["FD_SEEK"] | R["FD_TELL"])
RIGHTS_SOCKET = RIGHTS_STREAM | R["SOCK_SHUTDOWN"] | R["SOCK_ACCEPT"]
# What a directory fd itself may do: wasmtime answers EBADF to fd_sync, fd_advise and
# fd_fdstat_set_flags on one, as to the fd_* calls on its content.
RIGHTS_DIRECTORY = (R["PATH_CREATE_DIRECTORY"] | R["PATH_CREATE_FILE"] | R["PATH_LINK_SOURCE"]
                    | R["PATH_LINK_TARGET"] | R["PATH_OPEN"] | R["FD_READDIR"]
                    | R["PATH_READLINK"] | R["PATH_RENAME_SOURCE"] | R["PATH_RENAME_TARGET"]
                    | R["PATH_FILESTAT_GET"] | R["PATH_FILESTAT_SET_SIZE"]
                    | R["PATH_FILESTAT_SET_TIMES"] | R["FD_FILESTAT_GET"]
                    | R["FD_FILESTAT_SET_TIMES"] | R["PATH_SYMLINK"] | R["PATH_REMOVE_DIRECTORY"]
                    | R["PATH_UNLINK_FILE"] | R["POLL_FD_READWRITE"])

# The rights fd_fdstat_get reports, as wasmtime reports them (measured: wasmtime-py 50).
# Rights are advisory there: whatever a guest asks for, a preopen, another directory and a
# file each show a fixed set, a file less FD_WRITE unless opened for writing and less
# FD_READ/FD_READDIR unless opened for reading. callgate shows the same; what an fd may do
# follows from its type and host access mode, as in wasmtime (FdEntry.allowed).
SHOWN_PREOPEN_BASE = RIGHTS_DIRECTORY & ~(R["PATH_FILESTAT_SET_SIZE"] | R["POLL_FD_READWRITE"])
SHOWN_PREOPEN_INHERITING = RIGHTS_ALL & ~(R["PATH_FILESTAT_SET_SIZE"] | R["SOCK_SHUTDOWN"]
                                          | R["SOCK_ACCEPT"])
SHOWN_DIRECTORY = RIGHTS_ALL & ~(R["FD_SEEK"] | R["FD_WRITE"] | R["PATH_FILESTAT_SET_SIZE"]
                                 | R["FD_FILESTAT_SET_SIZE"])


def shown_file_rights(readable: bool, writable: bool) -> int:
    """What fd_fdstat_get reports (base and inheriting) for a file opened this way."""
    return (RIGHTS_ALL & ~(0 if writable else R["FD_WRITE"])
            & ~(0 if readable else R["FD_READ"] | R["FD_READDIR"]))

# --- structs --------------------------------------------------------------------------------
FDSTAT = struct.Struct("<BxHxxxxQQ")            # filetype, flags, rights base, inheriting
FILESTAT = struct.Struct("<QQBxxxxxxxQQQQQ")    # dev ino filetype nlink size atim mtim ctim
PRESTAT = struct.Struct("<BxxxI")               # tag, pr_name_len
DIRENT = struct.Struct("<QQIBxxx")              # d_next d_ino d_namlen d_type
SUBSCRIPTION = struct.Struct("<QB7x32s")        # userdata, tag, union
SUB_CLOCK = struct.Struct("<IxxxxQQH6x")          # id, timeout, precision, flags
SUB_FD = struct.Struct("<I")                    # file_descriptor
EVENT = struct.Struct("<QHBxxxxxQH6x")          # userdata error type nbytes flags
CIOVEC = struct.Struct("<II")

assert (FDSTAT.size, FILESTAT.size, PRESTAT.size, DIRENT.size) == (24, 64, 8, 24)
assert (SUBSCRIPTION.size, EVENT.size) == (48, 32)
