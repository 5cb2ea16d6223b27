"""Landlock: the kernel layer's wall around *paths*, the one thing a seccomp filter cannot see.

A seccomp filter judges a syscall by its numbers. ``openat(AT_FDCWD, "/etc/shadow")``
and ``openat(AT_FDCWD, "notes.txt")`` differ only in memory a filter cannot read, and an
absolute path ignores the directory fd, the one number that would tell them apart. So
once a policy lets the host open files (any filesystem gate does), the filter lets the
*host* open any file: a gate bug or a broker could read ``/etc/shadow`` or unlink a file
outside every preopen. Landlock closes that gap: a ruleset of paths, enforced by the
kernel on every later open, create, remove, rename and link of the calling thread.

callgate derives the ruleset at lockdown (:func:`callgate.kernel.lockdown.lockdown`):

* each preopened directory the plugin holds: read-only for ``:ro`` preopens, read-write
  otherwise (the rule attaches to the directory through the fd already held, so it
  names exactly what the plugin was given, even through ``/proc/self/fd/N``);
* what the runtime itself needs after lockdown: nothing (:data:`RUNTIME_PATHS`,
  measured with ``strace``; see docs/kernel.md);
* what the policy names in its ``[landlock]`` section: ``read`` and ``write`` paths,
  ``connect_tcp`` and ``bind_tcp`` ports.

Everything the ABI can express is *handled* - so denied unless a rule allows it:
every filesystem right of the ABI, TCP bind/connect (ABI 4) and the abstract-socket
and signal scopes (ABI 6). The ABI is asked of the kernel first
(``LANDLOCK_CREATE_RULESET_VERSION``); a kernel without Landlock (``ENOSYS``, or
``EOPNOTSUPP`` when it is disabled at boot) gets a :class:`LandlockUnavailable` warning
and the lockdown goes on with seccomp alone - unless the policy says
``required = true``.

The syscalls go through :func:`callgate.kernel.binding.raw_syscall` (cffi, ABI mode);
the structs have ``<linux/landlock.h>``'s layout.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from callgate.arch import native_arch
from callgate.errors import CallgateError
from callgate.kernel.binding import ffi, raw_syscall
from callgate.policy.model import LandlockSection

ffi.cdef(
    """
    struct landlock_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;   /* ABI 4 */
        uint64_t scoped;               /* ABI 6 */
    };
    struct landlock_net_port_attr { uint64_t allowed_access; uint64_t port; };
    """
)
ffi.cdef(
    "struct landlock_path_beneath_attr { uint64_t allowed_access; int32_t parent_fd; };",
    packed=True,  # __attribute__((packed)) in the uapi header: 12 bytes
)

# landlock_create_ruleset(2) flags, landlock_add_rule(2) rule types.
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2  # ABI 4
# landlock_restrict_self(2) flags.
LANDLOCK_RESTRICT_SELF_TSYNC = 1 << 3  # ABI 8: every thread of the process, atomically

# (name, bit, the ABI that introduced it), as <linux/landlock.h> numbers them.
FS_RIGHTS: tuple[tuple[str, int, int], ...] = (
    ("execute", 1 << 0, 1),
    ("write_file", 1 << 1, 1),
    ("read_file", 1 << 2, 1),
    ("read_dir", 1 << 3, 1),
    ("remove_dir", 1 << 4, 1),
    ("remove_file", 1 << 5, 1),
    ("make_char", 1 << 6, 1),
    ("make_dir", 1 << 7, 1),
    ("make_reg", 1 << 8, 1),
    ("make_sock", 1 << 9, 1),
    ("make_fifo", 1 << 10, 1),
    ("make_block", 1 << 11, 1),
    ("make_sym", 1 << 12, 1),
    ("refer", 1 << 13, 2),  # rename/link into another directory; always denied under ABI 1
    ("truncate", 1 << 14, 3),
    ("ioctl_dev", 1 << 15, 5),
)
NET_RIGHTS: tuple[tuple[str, int, int], ...] = (
    ("bind_tcp", 1 << 0, 4),
    ("connect_tcp", 1 << 1, 4),
)
SCOPES: tuple[tuple[str, int, int], ...] = (
    ("abstract_unix_socket", 1 << 0, 6),  # connect to an abstract socket outside the domain
    ("signal", 1 << 1, 6),  # send a signal to a process outside the domain
)
_FS = {name: bit for name, bit, _ in FS_RIGHTS}

#: What a read-only rule grants: read files, list directories.
READ_ACCESS = _FS["read_file"] | _FS["read_dir"]
#: What a read-write rule grants beyond reading: what WASI's path calls do. Never
#: ``execute``, device nodes, sockets or FIFOs (WASI creates none), nor device ioctls.
WRITE_ACCESS = (
    _FS["write_file"] | _FS["remove_dir"] | _FS["remove_file"] | _FS["make_dir"]
    | _FS["make_reg"] | _FS["make_sym"] | _FS["refer"] | _FS["truncate"]
)
#: The rights that make sense on a file (not a directory); the kernel refuses the others.
FILE_ACCESS = (
    _FS["execute"] | _FS["write_file"] | _FS["read_file"] | _FS["truncate"] | _FS["ioctl_dev"]
)


class LandlockError(CallgateError, OSError):
    """Landlock could not be set up (or was required and is missing); the process should exit."""


class LandlockUnavailable(UserWarning):
    """The kernel has no Landlock (or an ABI without what was asked): paths stay unconfined."""


@dataclass(frozen=True, slots=True)
class PathRule:
    """Allow reading (and with ``write``, changing) the file hierarchy at ``path``.

    ``fd``: an fd already open on it (a preopened directory); the rule then attaches to
    exactly that directory and ``path`` only names it in reports. Without ``fd``, ``path``
    is opened with ``O_PATH`` at lockdown. ``why`` says where the rule comes from.
    """

    path: str
    write: bool = False
    why: str = ""
    fd: int | None = None


#: Paths the runtime itself opens after lockdown: none. Measured with ``strace -f`` on
#: ``callgate run --kernel`` and ``--isolate`` (every guest in guests/wasm, with preopens,
#: an audit file, a broker, traps, kills, fuel, deadlines, output limits): after the filter
#: goes on, every path syscall is relative to a preopened directory's fd. The one exception
#: is a traceback printed after lockdown, which looks for the source lines of the ``.py``
#: files it names; under Landlock it prints without them.
RUNTIME_PATHS: tuple[PathRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Ruleset:
    """Everything the locked-down process may still reach by path or TCP port."""

    paths: tuple[PathRule, ...] = ()
    connect_tcp: tuple[int, ...] = ()
    bind_tcp: tuple[int, ...] = ()
    required: bool = False  # no Landlock is an error, not a warning


@dataclass(frozen=True, slots=True)
class AppliedRule:
    path: str
    access: str  # "read" or "read-write"
    rights: int  # the allowed_access bits given to the kernel
    why: str

    def __str__(self) -> str:
        return f"{self.access:<10} {self.path}  ({self.why})" if self.why else \
            f"{self.access:<10} {self.path}"


@dataclass(frozen=True, slots=True)
class LandlockReport:
    """What :func:`restrict_self` enforced, for the lockdown report and tests.

    ``abi``: the ABI the ruleset was built for (None: nothing enforced, see ``warning``);
    ``kernel_abi``: what the kernel reported (0: no Landlock). ``handled_*`` are the
    rights denied unless a rule allows them. ``skipped``: rules that could not be added
    (a path that does not exist), each ``"path: reason"``; what they named stays denied.
    ``unconfined_threads``: threads that existed before and are not in the domain
    (Landlock confines the calling thread and its future threads; only ABI 8's TSYNC
    reaches the others).
    """

    abi: int | None
    kernel_abi: int
    rules: tuple[AppliedRule, ...] = ()
    handled_fs: int = 0
    handled_net: int = 0
    scoped: int = 0
    connect_tcp: tuple[int, ...] = ()
    bind_tcp: tuple[int, ...] = ()
    skipped: tuple[str, ...] = ()
    unconfined_threads: tuple[int, ...] = ()
    warning: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for the worker's ``ready`` message)."""
        return {
            "abi": self.abi, "kernel_abi": self.kernel_abi,
            "rules": [[r.path, r.access, r.rights, r.why] for r in self.rules],
            "handled_fs": self.handled_fs, "handled_net": self.handled_net,
            "scoped": self.scoped, "connect_tcp": list(self.connect_tcp),
            "bind_tcp": list(self.bind_tcp), "skipped": list(self.skipped),
            "unconfined_threads": list(self.unconfined_threads), "warning": self.warning,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LandlockReport:
        return cls(
            abi=data["abi"], kernel_abi=int(data["kernel_abi"]),
            rules=tuple(AppliedRule(str(p), str(a), int(r), str(w))
                        for p, a, r, w in data["rules"]),
            handled_fs=int(data["handled_fs"]), handled_net=int(data["handled_net"]),
            scoped=int(data["scoped"]), connect_tcp=tuple(data["connect_tcp"]),
            bind_tcp=tuple(data["bind_tcp"]), skipped=tuple(data["skipped"]),
            unconfined_threads=tuple(data["unconfined_threads"]), warning=data["warning"],
        )


@cache
def _nr(name: str) -> int:
    return native_arch().number(name)


def kernel_abi() -> tuple[int, int]:
    """``(abi, errno)``: the Landlock ABI the kernel offers, or ``(0, errno)`` without one.

    ``ENOSYS``: a kernel built without Landlock; ``EOPNOTSUPP``: built with it but not
    enabled at boot (``lsm=``). Any other errno (a seccomp filter of a container
    refusing the call, say) means the same for us: no Landlock here.
    """
    ret, err = raw_syscall(_nr("landlock_create_ruleset"), 0, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return (0, err) if ret == -1 else (ret, 0)


def _mask(table: tuple[tuple[str, int, int], ...], abi: int) -> int:
    value = 0
    for _, bit, since in table:
        if abi >= since:
            value |= bit
    return value


def handled(abi: int) -> tuple[int, int, int]:
    """``(fs, net, scoped)``: everything ABI ``abi`` can deny, all of it handled."""
    return _mask(FS_RIGHTS, abi), _mask(NET_RIGHTS, abi), _mask(SCOPES, abi)


def rights_names(value: int, table: tuple[tuple[str, int, int], ...] = FS_RIGHTS) -> list[str]:
    """The names of the bits set in ``value``."""
    return [name for name, bit, _ in table if value & bit]


def _attr_size(abi: int) -> int:
    """The prefix of ``struct landlock_ruleset_attr`` the ABI knows (older kernels refuse
    a larger size with E2BIG unless the extra bytes are zero; send exactly what we mean)."""
    return 8 if abi < 4 else 16 if abi < 6 else 24


def _check(ret: int, err: int, what: str) -> int:
    if ret == -1:
        raise LandlockError(err, f"{what} failed: {os.strerror(err)}")
    return ret


def restrict_self(ruleset: Ruleset, *, abi: int | None = None) -> LandlockReport:
    """Build ``ruleset`` for the best ABI available and enforce it on this thread.

    ``abi`` caps the ABI used (None: what the kernel offers; 0: behave as on a kernel
    without Landlock - the warning path, for tests). Needs NO_NEW_PRIVS or
    CAP_SYS_ADMIN, and must run before a seccomp filter that does not allow the three
    Landlock syscalls. Irreversible, like the filter.
    """
    offered, err = kernel_abi()
    use = offered if abi is None else min(abi, offered)
    if use <= 0:
        why = (f"the kernel has no Landlock ({errno.errorcode.get(err, err)})" if offered == 0
               else f"Landlock was switched off (ABI {abi} asked, the kernel offers {offered})")
        message = (f"{why}: paths are not confined, only the seccomp filter holds - host code "
                   "can open any file the filter's syscalls reach")
        if ruleset.required:
            raise LandlockError(err or errno.EOPNOTSUPP, f"{message} (the policy's [landlock] "
                                "says required = true)")
        warnings.warn(message, LandlockUnavailable, stacklevel=2)
        return LandlockReport(abi=None, kernel_abi=offered, warning=message)

    fs, net, scoped = handled(use)
    attr = ffi.new("struct landlock_ruleset_attr *", (fs, net, scoped))
    ruleset_fd = _check(*raw_syscall(_nr("landlock_create_ruleset"), attr, _attr_size(use), 0),
                        "landlock_create_ruleset")
    try:
        applied, skipped = _add_paths(ruleset_fd, ruleset.paths, fs)
        if net:
            for port in ruleset.connect_tcp:
                _add_port(ruleset_fd, port, _mask(NET_RIGHTS[1:], use))
            for port in ruleset.bind_tcp:
                _add_port(ruleset_fd, port, _mask(NET_RIGHTS[:1], use))
        tsync = use >= 8
        others = () if tsync else _other_threads()
        flags = LANDLOCK_RESTRICT_SELF_TSYNC if tsync else 0
        _check(*raw_syscall(_nr("landlock_restrict_self"), ruleset_fd, flags),
               "landlock_restrict_self")
    finally:
        os.close(ruleset_fd)
    return LandlockReport(
        abi=use, kernel_abi=offered, rules=tuple(applied), handled_fs=fs, handled_net=net,
        scoped=scoped, connect_tcp=tuple(ruleset.connect_tcp) if net else (),
        bind_tcp=tuple(ruleset.bind_tcp) if net else (), skipped=tuple(skipped),
        unconfined_threads=others,
    )


def _add_paths(
    ruleset_fd: int, rules: Iterable[PathRule], fs: int
) -> tuple[list[AppliedRule], list[str]]:
    applied: list[AppliedRule] = []
    skipped: list[str] = []
    for rule in rules:
        fd = rule.fd
        if fd is None:
            try:
                fd = os.open(rule.path, os.O_PATH | os.O_CLOEXEC)
            except OSError as exc:
                skipped.append(f"{rule.path}: {exc.strerror}")
                continue
        try:
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            rights = (READ_ACCESS | (WRITE_ACCESS if rule.write else 0)) & fs
            if not is_dir:
                rights &= FILE_ACCESS
            beneath = ffi.new("struct landlock_path_beneath_attr *", (rights, fd))
            _check(*raw_syscall(_nr("landlock_add_rule"), ruleset_fd, LANDLOCK_RULE_PATH_BENEATH,
                                beneath, 0), f"landlock_add_rule({rule.path!r})")
        finally:
            if rule.fd is None:
                os.close(fd)
        access = "read-write" if rule.write else "read"
        applied.append(AppliedRule(rule.path, access, rights, rule.why))
    return applied, skipped


def _add_port(ruleset_fd: int, port: int, rights: int) -> None:
    attr = ffi.new("struct landlock_net_port_attr *", (rights, port))
    _check(*raw_syscall(_nr("landlock_add_rule"), ruleset_fd, LANDLOCK_RULE_NET_PORT, attr, 0),
           f"landlock_add_rule(port {port})")


def _other_threads() -> tuple[int, ...]:
    me = _check(*raw_syscall(_nr("gettid")), "gettid")
    try:
        return tuple(sorted(int(t) for t in os.listdir("/proc/self/task") if int(t) != me))
    except OSError:
        return ()


# --- where rules come from --------------------------------------------------------------


def plugin_rules(plugin: Any) -> tuple[PathRule, ...]:
    """A rule per directory a loaded plugin holds (its WASI preopens), by the fd it holds.

    Read-only when the directory was preopened ``:ro``. Duck-typed like
    :func:`callgate.kernel.lockdown.plugin_fds`: the kernel layer does not import the runtime.
    """
    rules: list[PathRule] = []
    for state in getattr(plugin, "_states", ()):
        entries = getattr(getattr(state, "table", None), "entries", {})
        for entry in entries.values():
            fd = getattr(entry, "host_fd", None)
            if fd is None or not getattr(entry, "is_dir", False):
                continue
            guest = getattr(entry, "preopen", None)
            try:
                host = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                host = f"fd {fd}"
            mode = "read-only " if entry.readonly else ""
            why = f"{mode}preopen {guest}" if guest else "a directory the plugin holds"
            rules.append(PathRule(host, write=not entry.readonly, why=why, fd=fd))
    return tuple(rules)


def policy_rules(section: LandlockSection | None) -> Ruleset:
    """The policy's ``[landlock]`` section as a ruleset (no section: nothing extra)."""
    if section is None:
        return Ruleset()
    paths = tuple(PathRule(p, write=False, why="policy [landlock] read") for p in section.read)
    paths += tuple(PathRule(p, write=True, why="policy [landlock] write") for p in section.write)
    return Ruleset(paths, section.connect_tcp, section.bind_tcp, section.required)


def ruleset_for(section: LandlockSection | None, held: Iterable[PathRule] = ()) -> Ruleset:
    """The lockdown ruleset: the directories ``held`` (preopens), what the runtime needs
    (:data:`RUNTIME_PATHS`), and the policy's ``[landlock]`` section."""
    extra = policy_rules(section)
    return Ruleset((*held, *RUNTIME_PATHS, *extra.paths), extra.connect_tcp, extra.bind_tcp,
                   extra.required)
