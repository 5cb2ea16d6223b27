"""The capability filesystem: every guest path is resolved *beneath* a directory fd.

Resolution goes through Linux ``openat2(2)`` with ``RESOLVE_BENEATH |
RESOLVE_NO_MAGICLINKS``: the kernel itself refuses ``..`` past the starting
directory, absolute paths, symlinks (at any depth, followed or created later)
that lead out, and ``/proc/self/...``-style magic links, atomically with the
lookup — so a host-side rename race cannot smuggle a path out either.

Operations that act on a *name* (mkdir, unlink, rename, link, symlink,
readlink, stat, utimes) first open the parent directory with ``openat2`` and
then call the ``*at()`` syscall on the final component only, which never
follows a symlink in it. No host path string is ever built by joining.

``RESOLVE_BENEATH`` cannot stop one thing: ``/proc/self`` is an ordinary symlink and
``/proc/self/mem`` an ordinary file, so under a preopened ``/`` the host's own memory
is "beneath". Every open therefore also checks *what* it reached
(:func:`check_reachable`): a guest path may not cross into a pseudo filesystem
(procfs, sysfs, debugfs, tracefs, cgroup, bpf …) other than the one its starting
directory is on, and may open no device node but the harmless ones
(:data:`SAFE_DEVICES`). A preopen that *is* a pseudo filesystem is refused unless the
host opts in for it (``Preopen(..., pseudo_fs=True)``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

import cffi

from callgate.arch import native_arch

ffi = cffi.FFI()
ffi.cdef("""
    struct open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
    struct timespec { long tv_sec; long tv_nsec; };
    struct statfs_head { long f_type; char rest[248]; };  /* f_type leads struct statfs */
    int fstatfs(int fd, struct statfs_head *buf);
    long syscall(long number, ...);
    int utimensat(int dirfd, const char *pathname, const struct timespec times[2], int flags);
    int futimens(int fd, const struct timespec times[2]);
""")
_libc = ffi.dlopen(None)

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
_SYS_OPENAT2 = native_arch().number("openat2")
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100
_OPEN_RETRIES = 16  # openat2 answers EAGAIN when a concurrent rename races a ".." walk

#: Host syscalls the functions of this module make (for ``GateSpec.syscalls``): resolving
#: beneath a directory (and checking what was reached), and the stat calls glibc may use.
STAT_SYSCALLS = frozenset({"fstat", "newfstatat", "statx"})
RESOLVE_SYSCALLS = frozenset({"openat2", "close", "fstatfs"}) | STAT_SYSCALLS

#: ``f_type`` of the pseudo filesystems a guest path must not cross into (linux/magic.h):
#: their files are views of kernel and process state, not data (``/proc/self/mem`` is
#: the host's own memory; sysfs and debugfs reach hardware and kernel internals).
PSEUDO_FS: dict[int, str] = {
    0x9FA0: "proc", 0x62656572: "sysfs", 0x64626720: "debugfs", 0x74726163: "tracefs",
    0x73636673: "securityfs", 0x27E0EB: "cgroup", 0x63677270: "cgroup2",
    0xCAFE4A11: "bpf", 0x1CD1: "devpts", 0x62656570: "configfs", 0xDE5E81E4: "efivarfs",
    0x6165676C: "pstore", 0xF97CFF8C: "selinuxfs", 0x43415D53: "smackfs",
    0x65735543: "fusectl", 0x42494E4D: "binfmt_misc", 0x19800202: "mqueue",
    0x6E736673: "nsfs", 0x50495045: "pipefs", 0x534F434B: "sockfs", 0xBAD1DEA: "futexfs",
    0x9123683E: "btrfs_test", 0x67596969: "rpc_pipefs", 0x57AC6E9D: "stack_end",
}
#: Device nodes a guest may open, by (major, minor): they hold no data of the host's.
SAFE_DEVICES: dict[tuple[int, int], str] = {
    (1, 3): "null", (1, 5): "zero", (1, 7): "full", (1, 8): "random", (1, 9): "urandom",
}


def fs_type(fd: int) -> int:
    """The ``f_type`` (filesystem magic) of the filesystem ``fd`` is on."""
    buf = ffi.new("struct statfs_head *")
    if _libc.fstatfs(fd, buf) != 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err))
    return int(buf.f_type) & 0xFFFFFFFF


def pseudo_fs_name(fd: int) -> str | None:
    """The name of the pseudo filesystem ``fd`` is on, or None for an ordinary one."""
    return PSEUDO_FS.get(fs_type(fd))


def check_reachable(dirfd: int, fd: int, path: str) -> None:
    """Refuse (EACCES) what a guest may not reach, though it resolved beneath ``dirfd``.

    A pseudo filesystem is reachable only from a directory on that same filesystem
    (a preopen the host opted in for); a device node only if it is a :data:`SAFE_DEVICES`.
    """
    st = os.fstat(fd)
    harmless = stat.S_ISCHR(st.st_mode) and \
        (os.major(st.st_rdev), os.minor(st.st_rdev)) in SAFE_DEVICES
    if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and not harmless:
        raise OSError(errno.EACCES, f"{path!r} is a device node a guest may not open")
    kind = fs_type(fd)
    if kind in PSEUDO_FS and fs_type(dirfd) != kind:
        raise OSError(errno.EACCES, f"{path!r} is on {PSEUDO_FS[kind]}, a pseudo filesystem "
                      "a guest may not enter")


def open_beneath(dirfd: int, path: str, flags: int, mode: int = 0, *, follow: bool = True) -> int:
    """``openat2(dirfd, path)`` confined beneath ``dirfd``; an escape raises EPERM.

    ``follow`` False adds ``O_NOFOLLOW`` (a final symlink gives ELOOP, or is
    opened itself with ``O_PATH``). The kernel reports an escape as EXDEV; WASI
    callers (and wasmtime) expect EPERM for it. What was reached is checked with
    :func:`check_reachable`; a real (not ``O_PATH``) open is probed with ``O_PATH``
    first, so a forbidden device is never opened (opening some has side effects).
    """
    if not flags & os.O_PATH:
        try:
            probe = _openat2(dirfd, path, os.O_PATH | (flags & os.O_DIRECTORY), 0, follow)
        except OSError:
            probe = None  # the real open below fails with the right errno, or creates
        if probe is not None:
            try:
                check_reachable(dirfd, probe, path)
            finally:
                os.close(probe)
    fd = _openat2(dirfd, path, flags, mode, follow)
    try:
        check_reachable(dirfd, fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _openat2(dirfd: int, path: str, flags: int, mode: int, follow: bool) -> int:
    if "\0" in path:
        raise OSError(errno.EINVAL, "path contains a NUL byte")
    flags |= os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    if not flags & os.O_CREAT and flags & os.O_TMPFILE != os.O_TMPFILE:
        mode = 0  # openat2 rejects a mode it would not use
    how = ffi.new("struct open_how *", {"flags": flags, "mode": mode, "resolve": _RESOLVE})
    raw = path.encode("utf-8", "surrogateescape")
    for _ in range(_OPEN_RETRIES):
        fd = _libc.syscall(ffi.cast("long", _SYS_OPENAT2), ffi.cast("int", dirfd),
                           ffi.new("char[]", raw), how, ffi.cast("size_t", ffi.sizeof(how[0])))
        if fd >= 0:
            return int(fd)
        err = ffi.errno
        if err != errno.EAGAIN:
            break
    if err == errno.EXDEV:
        err = errno.EPERM
    elif err == errno.ENOTDIR and not follow and _is_symlink(dirfd, path):
        err = errno.ELOOP  # O_NOFOLLOW|O_DIRECTORY on a symlink: ELOOP, as in wasmtime
    raise OSError(err, f"{os.strerror(err)}: {path!r}")


def _is_symlink(dirfd: int, path: str) -> bool:
    try:
        with parent_of(dirfd, path) as (parent, name):
            return not has_trailing_slash(name) and stat.S_ISLNK(
                os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def split_path(path: str) -> tuple[str, str]:
    """``"a/b/c/"`` -> ``("a/b/", "c/")``: the parent to resolve and the final component.

    The final component keeps its trailing slashes (they mean "must be a
    directory" to the ``*at()`` calls). A final ``.`` or ``..`` is resolved as
    part of the parent, so a name-level call never steps outside the resolved
    directory; ``""`` is ENOENT.
    """
    if "\0" in path:
        raise OSError(errno.EINVAL, "path contains a NUL byte")
    stripped = path.rstrip("/")
    if not stripped:
        raise OSError(errno.EPERM if path else errno.ENOENT, f"no file name in {path!r}")
    cut = stripped.rfind("/")
    parent, name = (".", stripped) if cut < 0 else (stripped[:cut + 1], stripped[cut + 1:])
    if name in (".", ".."):
        return stripped, "."
    return parent, name + path[len(stripped):]


@contextmanager
def parent_of(dirfd: int, path: str) -> Iterator[tuple[int, str]]:
    """Open the parent of ``path`` beneath ``dirfd`` (``O_PATH``); yield it and the final name."""
    parent, name = split_path(path)
    fd = open_beneath(dirfd, parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield fd, name
    finally:
        os.close(fd)


@contextmanager
def opened(dirfd: int, path: str, *, follow: bool, directory: bool = False) -> Iterator[int]:
    """An ``O_PATH`` fd for ``path`` itself (its symlink, unless ``follow``), beneath ``dirfd``."""
    flags = os.O_PATH | (os.O_DIRECTORY if directory else 0)
    fd = open_beneath(dirfd, path, flags, follow=follow)
    try:
        yield fd
    finally:
        os.close(fd)


def has_trailing_slash(name: str) -> bool:
    return name.endswith("/")


def stat_at(dirfd: int, path: str, *, follow: bool) -> os.stat_result:
    """Stat ``path`` beneath ``dirfd``; a followed symlink never leads out."""
    with opened(dirfd, path, follow=follow) as fd:
        return os.fstat(fd)


def _timespecs(atim: int | None, mtim: int | None) -> object:
    """``None`` = omit, ``-1`` = now, else nanoseconds since the epoch."""
    times = ffi.new("struct timespec[2]")
    for slot, value in zip(times, (atim, mtim), strict=True):
        if value is None:
            slot.tv_sec, slot.tv_nsec = 0, UTIME_OMIT
        elif value < 0:
            slot.tv_sec, slot.tv_nsec = 0, UTIME_NOW
        else:
            slot.tv_sec, slot.tv_nsec = divmod(value, 1_000_000_000)
    return times


def futimens(fd: int, atim: int | None, mtim: int | None) -> None:
    """Set an open file's times (see :func:`_timespecs` for the values)."""
    if _libc.futimens(fd, _timespecs(atim, mtim)) != 0:
        raise OSError(ffi.errno, os.strerror(ffi.errno))


def utimes_at(dirfd: int, path: str, atim: int | None, mtim: int | None, *, follow: bool) -> None:
    """Set the times of ``path`` beneath ``dirfd``.

    Not following: ``utimensat(parent, name, AT_SYMLINK_NOFOLLOW)``. Following:
    the target is opened beneath (``O_PATH``) and reached through our own fd's
    ``/proc/self/fd`` entry, the only way to set times on an ``O_PATH`` fd.
    """
    times = _timespecs(atim, mtim)
    if follow:
        with opened(dirfd, path, follow=True) as fd:
            rc = _libc.utimensat(-100, f"/proc/self/fd/{fd}".encode(), times, 0)
    else:
        with parent_of(dirfd, path) as (parent, name):
            if has_trailing_slash(name):
                with opened(parent, name, follow=True) as fd:
                    rc = _libc.utimensat(-100, f"/proc/self/fd/{fd}".encode(), times, 0)
            else:
                rc = _libc.utimensat(parent, name.encode("utf-8", "surrogateescape"), times,
                                     AT_SYMLINK_NOFOLLOW)
    if rc != 0:
        raise OSError(ffi.errno, os.strerror(ffi.errno))


def mkdir_at(dirfd: int, path: str) -> None:
    with parent_of(dirfd, path) as (parent, name):
        os.mkdir(name, 0o777, dir_fd=parent)


def rmdir_at(dirfd: int, path: str) -> None:
    """rmdir; ``name/`` is removed as wasmtime does it, as ``rmdir(".")`` inside the
    directory it leads to: EINVAL (ENOTDIR/ENOENT when it leads nowhere)."""
    with parent_of(dirfd, path) as (parent, name):
        if has_trailing_slash(name):
            with opened(parent, name, follow=True, directory=True):
                raise OSError(errno.EINVAL, "cannot remove '.'")
        os.rmdir(name, dir_fd=parent)


def unlink_at(dirfd: int, path: str) -> None:
    """unlink; ``name/`` never names a file: EISDIR if it leads to a directory (wasmtime)."""
    with parent_of(dirfd, path) as (parent, name):
        if has_trailing_slash(name):
            with opened(parent, name, follow=True, directory=True):
                raise OSError(errno.EISDIR, "is a directory")
        os.unlink(name, dir_fd=parent)


def symlink_at(target: str, dirfd: int, path: str) -> None:
    """Create a symlink to a relative target.

    Following any symlink stays beneath the preopen anyway, but an absolute target
    could never resolve there and only names host paths, so it is refused with
    EPERM (as wasmtime does; the wasi-testsuite's ``symlink_create`` expects it).
    """
    if "\0" in target:
        raise OSError(errno.EINVAL, "symlink target contains a NUL byte")
    if target.startswith("/"):
        raise OSError(errno.EPERM, f"absolute symlink target {target!r}")
    with parent_of(dirfd, path) as (parent, name):
        if has_trailing_slash(name):
            # wasmtime creates "name/" as "." inside the directory name leads to: EEXIST
            # when there is one, ENOTDIR/ENOENT when it leads elsewhere or nowhere.
            with opened(parent, name, follow=True, directory=True):
                raise OSError(errno.EEXIST, "file exists")
        os.symlink(target, name, dir_fd=parent)


def readlink_at(dirfd: int, path: str) -> bytes:
    with parent_of(dirfd, path) as (parent, name):
        if has_trailing_slash(name):
            # "link/" names what the link points to, which is never a symlink.
            with opened(parent, name, follow=True):
                raise OSError(errno.EINVAL, "not a symbolic link")
        return os.readlink(name.encode("utf-8", "surrogateescape"), dir_fd=parent)


def rename_at(old_dirfd: int, old_path: str, new_dirfd: int, new_path: str) -> None:
    with parent_of(old_dirfd, old_path) as (old_parent, old_name), \
            parent_of(new_dirfd, new_path) as (new_parent, new_name):
        os.rename(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent)


def link_at(old_dirfd: int, old_path: str, new_dirfd: int, new_path: str) -> None:
    """Hard-link the final component itself (a symlink stays a symlink, never followed)."""
    with parent_of(old_dirfd, old_path) as (old_parent, old_name), \
            parent_of(new_dirfd, new_path) as (new_parent, new_name):
        if has_trailing_slash(old_name):
            with opened(old_parent, old_name, follow=True, directory=True):
                raise OSError(errno.EPERM, "cannot hard-link a directory")
        os.link(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent,
                follow_symlinks=False)
