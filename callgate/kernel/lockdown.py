"""The lockdown sequence: shed every authority the process no longer needs, then seal it.

Order matters and is fixed:

1. the caller compiles and instantiates first (compiling needs threads, memfd and
   executable mappings that the sealed process will never get again);
2. :func:`close_fds_except` closes every fd not on an explicit keep-list, with
   ``close_range``;
3. :func:`drop_capabilities` empties the ambient, bounding, inheritable,
   permitted and effective sets;
4. NO_NEW_PRIVS;
5. :func:`~callgate.kernel.wx.seal_wx`: no mapping stays writable and executable (libffi's
   closure pages become read+exec, the callbacks in them are pinned, new ones refused);
6. Landlock (:mod:`~callgate.kernel.landlock`): the paths the process may still reach -
   its preopened directories and what the policy's ``[landlock]`` names - because a
   filter sees only numbers, never the path behind a pointer. Its three syscalls must
   come before the filter, which does not allow them;
7. the filter with TSYNC, so every thread - including ones started long before - runs
   under it. Its W^X rules keep step 5 true: nothing can be made writable+executable again.

Irreversible by design: call it only in a process you mean to seal (a worker, the
CLI, a forked child in tests).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from callgate.arch import native_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW
from callgate.bpf.insn import Insn
from callgate.errors import CallgateError
from callgate.gates.spec import GateSpec
from callgate.kernel import binding
from callgate.kernel.binding import (
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
    SeccompError,
    ffi,
    install_filter,
    libc,
    raw_syscall,
    set_no_new_privs,
)
from callgate.kernel.hostpolicy import HostPolicy, derive_host_policy
from callgate.kernel.landlock import (
    LandlockError,
    LandlockReport,
    PathRule,
    Ruleset,
    plugin_rules,
    restrict_self,
    ruleset_for,
)
from callgate.kernel.wx import SealError, WxSeal, seal_wx
from callgate.policy.model import Policy, Section

ffi.cdef(
    """
    struct __user_cap_header_struct { uint32_t version; int pid; };
    struct __user_cap_data_struct { uint32_t effective; uint32_t permitted; uint32_t inheritable; };
    """
)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522  # two data structs: capabilities 0..63
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETPCAP = 8
_UINT_MAX = 0xFFFFFFFF


class LockdownError(CallgateError, OSError):
    """A lockdown step failed; the process is only partly sealed and should exit."""


@dataclass(frozen=True, slots=True)
class LockdownReport:
    """What lockdown did, for logs and tests."""

    kept_fds: tuple[int, ...]
    held_fds: tuple[int, ...]  # read from /proc/self/fd just before the filter went on
    threads: int
    filter_instructions: int
    listener: int | None = None  # with NEW_LISTENER: the fd a supervisor answers on
    # Threads (tids) that still hold capabilities: started before drop_capabilities()
    # ran on the thread that created them. None is the goal; see drop_capabilities.
    capable_threads: tuple[int, ...] = ()
    # W^X: what was sealed before the filter went on; wx.remaining is () (lockdown refuses
    # otherwise), so no mapping is writable and executable at once. None: not sealed.
    wx: WxSeal | None = None
    # Landlock: the ruleset enforced before the filter went on (its ABI, the rules). None:
    # not asked for; landlock.abi None: the kernel has none (landlock.warning says so).
    landlock: LandlockReport | None = None

    @property
    def landlock_abi(self) -> int | None:
        """The Landlock ABI the paths are confined with; None when they are not."""
        return None if self.landlock is None else self.landlock.abi


def _syscall(name: str, *args: object) -> int:
    ret, err = raw_syscall(native_arch().number(name), *args)
    if ret == -1:
        raise LockdownError(err, f"{name} failed during lockdown: {os.strerror(err)}")
    return ret


def close_fds_except(keep: Iterable[int]) -> tuple[int, ...]:
    """Close every fd not in ``keep`` with ``close_range``, one call per gap; return ``keep``."""
    kept = tuple(sorted({fd for fd in keep if fd >= 0}))
    first = 0
    for fd in (*kept, _UINT_MAX + 1):
        if fd > first:
            _close_range(first, min(fd - 1, _UINT_MAX))
        first = fd + 1
    return kept


def _close_range(first: int, last: int) -> None:
    ret, err = raw_syscall(native_arch().number("close_range"), first, last, 0)
    if ret == -1 and err == errno.ENOSYS:  # kernel < 5.9
        os.closerange(first, min(last + 1, os.sysconf("SC_OPEN_MAX")))
    elif ret == -1:
        raise LockdownError(err, f"close_range({first}, {last}) failed: {os.strerror(err)}")


def held_fds() -> tuple[int, ...]:
    """This process's open fds from ``/proc/self/fd``, without the listing's own."""
    own = f"/proc/{os.getpid()}/fd"
    with os.scandir("/proc/self/fd") as entries:
        return tuple(sorted(int(e.name) for e in entries if os.readlink(e.path) != own))


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40  # CAP_CHECKPOINT_RESTORE, the last one Linux 5.9+ defines


def _prctl(option: int, arg: int) -> int:
    zero = ffi.cast("unsigned long", 0)
    ret: int = libc.prctl(option, ffi.cast("unsigned long", arg), zero, zero, zero)
    return ret


def capabilities(tid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) capability masks of thread ``tid`` (0 = caller)."""
    header = ffi.new("struct __user_cap_header_struct *", (_LINUX_CAPABILITY_VERSION_3, tid))
    data = ffi.new("struct __user_cap_data_struct[2]")
    _syscall("capget", header, data)
    effective, permitted, inheritable = (
        getattr(data[0], f) | getattr(data[1], f) << 32
        for f in ("effective", "permitted", "inheritable")
    )
    return effective, permitted, inheritable


def drop_capabilities() -> None:
    """Empty every capability set of the calling thread, for good.

    Capabilities are per-thread: threads that exist already keep theirs (the filter,
    installed with TSYNC, still binds them), while threads started afterwards inherit
    the empty sets. So call it once before anything starts threads (wasmtime compiles
    on a thread pool), as ``callgate run --kernel`` and the worker do, and again in
    :func:`lockdown`. The bounding set is emptied while CAP_SETPCAP is still held, so
    nothing can be regained through execve either.
    """
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)  # EINVAL on kernels without ambient
    if capabilities()[0] & 1 << CAP_SETPCAP:
        for cap in range(_last_cap() + 1):
            if _prctl(PR_CAPBSET_DROP, cap) == -1 and ffi.errno != errno.EINVAL:
                raise LockdownError(ffi.errno, f"PR_CAPBSET_DROP({cap}) failed")
    header = ffi.new("struct __user_cap_header_struct *", (_LINUX_CAPABILITY_VERSION_3, 0))
    data = ffi.new("struct __user_cap_data_struct[2]")  # all zero
    _syscall("capset", header, data)


def lockdown(
    program: bytes | Sequence[Insn],
    *,
    keep_fds: Iterable[int] = (0, 1, 2),
    flags: int = 0,
    landlock: Ruleset | None = None,
    landlock_abi: int | None = None,
) -> LockdownReport:
    """Seal the calling process: close fds, drop caps, NO_NEW_PRIVS, W^X, Landlock, filter.

    Call it after compiling and instantiating everything the process will run.
    ``flags`` adds seccomp filter flags (LOG, SPEC_ALLOW ...) to TSYNC. With
    NEW_LISTENER (TSYNC_ESRCH is then added, as the kernel requires) the report
    carries the listener fd, for a supervisor in another process. ``landlock``: the
    paths the process may still reach (None: no Landlock step); ``landlock_abi`` caps
    the Landlock ABI used (0: act as on a kernel without Landlock).
    """
    count = len(program) // 8 if isinstance(program, bytes | bytearray) else len(program)
    kept = close_fds_except(keep_fds)
    drop_capabilities()
    try:
        set_no_new_privs()
    except SeccompError as exc:
        raise LockdownError(exc.errno, str(exc)) from None
    # The last chance to open a directory: after the filter, openat may be gone.
    threads = len(os.listdir("/proc/self/task"))
    capable = capable_threads()
    held = held_fds()
    try:
        wx = seal_wx()  # after the last callback, before the filter forbids PROT_EXEC
    except SealError as exc:
        raise LockdownError(exc.errno, str(exc)) from None
    paths = None
    if landlock is not None:  # after the last look at /proc, before the filter
        try:
            paths = restrict_self(landlock, abi=landlock_abi)
        except LandlockError as exc:
            raise LockdownError(exc.errno, str(exc)) from None
    flags |= SECCOMP_FILTER_FLAG_TSYNC
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER:
        flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    listener = install_filter(program, flags)
    return LockdownReport(kept, held, threads, count, listener or None, capable, wx=wx,
                          landlock=paths)


def capable_threads() -> tuple[int, ...]:
    """Threads of this process whose effective, permitted or bounding set is not empty."""
    capable = []
    for tid in sorted(os.listdir("/proc/self/task"), key=int):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        if any(int(fields[key], 16) for key in ("CapEff", "CapPrm", "CapBnd")):
            capable.append(int(tid))
    return tuple(capable)


def filter_flags(names: Iterable[str]) -> int:
    """``SECCOMP_FILTER_FLAG_*`` names (a policy's ``[kernel] flags``) as one flag word."""
    value = 0
    for name in names:
        flag = getattr(binding, name, None)
        if not name.startswith("SECCOMP_FILTER_FLAG_") or not isinstance(flag, int):
            raise LockdownError(0, f"unknown seccomp filter flag {name!r}")
        value |= flag
    return value


def lock_host(
    policy: Policy,
    gate_specs: Iterable[GateSpec],
    *,
    keep_fds: Iterable[int] = (0, 1, 2),
    exec_after_lockdown: bool = False,
    paths: Iterable[PathRule] = (),
    landlock_abi: int | None = None,
) -> tuple[HostPolicy, LockdownReport]:
    """Derive the host policy for ``policy`` and lock this process down with it.

    What ``callgate run --kernel`` does after compiling and instantiating the plugin:
    ``gate_specs`` are the gates the host offers, ``keep_fds`` every fd it still needs
    (stdio, preopened directories). The policy's ``[kernel] flags`` are added to TSYNC.
    Landlock confines paths to ``paths`` (the preopens, see :func:`plugin_rules`) and
    the policy's ``[landlock]`` section: nothing else can be opened by path.
    """
    host = derive_host_policy(policy, gate_specs, exec_after_lockdown=exec_after_lockdown)
    report = lockdown(host.compile(), keep_fds=keep_fds, flags=filter_flags(policy.flags),
                      landlock=ruleset_for(policy.landlock, paths), landlock_abi=landlock_abi)
    return host, report


def plugin_fds(plugin: Any) -> set[int]:
    """The host fds a loaded plugin still needs after lockdown.

    They are the fds its gate providers' states hold in an fd table (WASI: stdio,
    preopened directories, sockets; ``state.table.entries[*].host_fd``) and its audit
    file. Everything else is closed by :func:`lockdown`.
    """
    fds: set[int] = set()
    for state in getattr(plugin, "_states", ()):
        entries = getattr(getattr(state, "table", None), "entries", {})
        fds.update(e.host_fd for e in entries.values() if getattr(e, "host_fd", None) is not None)
    audit_file = getattr(getattr(plugin, "audit_sink", None), "_file", None)
    if audit_file is not None:
        fds.add(audit_file.fileno())
    return fds


def lock_plugin(
    plugin: Any,
    policy: Policy | str | os.PathLike[str] | None,
    *,
    extra_fds: Iterable[int] = (),
    landlock_abi: int | None = None,
) -> LockdownReport:
    """Lock this process down for ``plugin``, already compiled and instantiated.

    The kernel filter is derived from ``policy`` (the one the plugin runs under) and the
    gates of the plugin's table; stdio, :func:`plugin_fds` and ``extra_fds`` (the
    application's own, e.g. a log file) stay open. Landlock confines paths to the
    directories the plugin holds (:func:`plugin_rules`: read-only for ``:ro`` preopens)
    and the policy's ``[landlock]`` section. What ``callgate run --kernel`` calls.
    """
    from callgate.policy import load_policy

    if policy is None:
        policy = Policy(gates=Section(default=SECCOMP_RET_ALLOW))  # the runtime's allow-all
    elif not isinstance(policy, Policy):
        names = [spec.name for spec in plugin.table if spec.module != "wasi_snapshot_preview1"]
        policy = load_policy(policy, gate_names=names)
    keep = {0, 1, 2, *plugin_fds(plugin), *extra_fds}
    _, report = lock_host(policy, list(plugin.table), keep_fds=keep, paths=plugin_rules(plugin),
                          landlock_abi=landlock_abi)
    return report
