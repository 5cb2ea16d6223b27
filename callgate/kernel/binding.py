"""The kernel's seccomp interface from Python: cffi in ABI mode over libc, nothing compiled.

Everything goes through glibc's ``syscall()``, ``prctl()`` and ``ioctl()`` so the
kernel's own return value and errno reach the caller unchanged (glibc's named
wrappers sometimes hide errors). The structs are declared with the kernel's exact
layout from ``<linux/seccomp.h>``; the ioctl numbers are computed from the
``_IOC`` formula below rather than copied as magic numbers.

A filter is permanent for the thread that installs it (and, with TSYNC, for the
whole process), so callers outside a sacrificial process should go through
:mod:`callgate.kernel.child`.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import cffi

from callgate.arch import native_arch
from callgate.bpf.insn import Insn, pack, unpack
from callgate.bpf.opcodes import BPF_MAXINSNS
from callgate.bpf.seccomp_data import U64_MASK, SeccompData
from callgate.errors import CallgateError

ffi = cffi.FFI()
ffi.cdef(
    """
    long syscall(long number, ...);
    int prctl(int option, ...);
    int ioctl(int fd, unsigned long request, ...);

    struct sock_filter { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };
    struct sock_fprog { unsigned short len; struct sock_filter *filter; };

    struct seccomp_data {
        int nr;
        uint32_t arch;
        uint64_t instruction_pointer;
        uint64_t args[6];
    };
    struct seccomp_notif_sizes {
        uint16_t seccomp_notif;
        uint16_t seccomp_notif_resp;
        uint16_t seccomp_data;
    };
    struct seccomp_notif {
        uint64_t id;
        uint32_t pid;
        uint32_t flags;
        struct seccomp_data data;
    };
    struct seccomp_notif_resp {
        uint64_t id;
        int64_t val;
        int32_t error;
        uint32_t flags;
    };
    struct seccomp_notif_addfd {
        uint64_t id;
        uint32_t flags;
        uint32_t srcfd;
        uint32_t newfd;
        uint32_t newfd_flags;
    };
    """
)
libc = ffi.dlopen(None)

PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

# seccomp(2) operations.
SECCOMP_SET_MODE_STRICT = 0
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_GET_NOTIF_SIZES = 3

# Flags for SECCOMP_SET_MODE_FILTER.
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 16
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 32

# seccomp_notif_resp.flags: let the syscall run as if there were no supervisor.
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1

# seccomp_notif_addfd.flags.
SECCOMP_ADDFD_FLAG_SETFD = 1  # install at exactly ``newfd`` (dup2 semantics)
SECCOMP_ADDFD_FLAG_SEND = 2  # install the fd and answer the call with its number, atomically


# <asm-generic/ioctl.h>: an ioctl number is dir << 30 | size << 16 | type << 8 | nr, with
# dir bit 0 = _IOC_WRITE (user → kernel) and bit 1 = _IOC_READ (kernel → user). This is the
# encoding of x86, arm, aarch64, riscv and s390; powerpc, mips and sparc use 3 dir bits and
# 13 size bits, which callgate does not support.
_IOC_WRITE = 1
_IOC_READ = 2
_SECCOMP_IOC_MAGIC = ord("!")


def _ioc(direction: int, nr: int, ctype: str) -> int:
    size: int = ffi.sizeof(ctype)
    return direction << 30 | size << 16 | _SECCOMP_IOC_MAGIC << 8 | nr


SECCOMP_IOCTL_NOTIF_RECV = _ioc(_IOC_READ | _IOC_WRITE, 0, "struct seccomp_notif")
SECCOMP_IOCTL_NOTIF_SEND = _ioc(_IOC_READ | _IOC_WRITE, 1, "struct seccomp_notif_resp")
SECCOMP_IOCTL_NOTIF_ID_VALID = _ioc(_IOC_WRITE, 2, "uint64_t")
SECCOMP_IOCTL_NOTIF_ADDFD = _ioc(_IOC_WRITE, 3, "struct seccomp_notif_addfd")


class SeccompInstallError(CallgateError, OSError):
    """The kernel refused ``seccomp(SECCOMP_SET_MODE_FILTER)``; the message says what to do.

    ``tid`` is set when TSYNC could not synchronise a thread and the kernel named it.
    """

    def __init__(self, err: int, message: str, tid: int | None = None) -> None:
        super().__init__(err, message)
        self.tid = tid


class SeccompError(CallgateError, OSError):
    """Any other seccomp(2), prctl or USER_NOTIF ioctl failure, with the kernel's errno."""


class NotifSizes(NamedTuple):
    """Struct sizes the running kernel uses for USER_NOTIF (``SECCOMP_GET_NOTIF_SIZES``)."""

    notif: int
    resp: int
    data: int


@dataclass(frozen=True, slots=True)
class Notification:
    """One intercepted syscall, as ``SECCOMP_IOCTL_NOTIF_RECV`` reports it."""

    id: int
    pid: int
    flags: int
    data: SeccompData


_ZERO = ffi.cast("long", 0)


def _long(value: object) -> object:
    """A variadic argument: an int (taken modulo 2**64) or a cdata pointer, as a C ``long``."""
    if isinstance(value, int):
        return ffi.cast("long", value & U64_MASK)
    return ffi.cast("long", value)


def raw_syscall(nr: int, *args: object) -> tuple[int, int]:
    """Make syscall ``nr`` through libc's ``syscall()``; return ``(ret, errno)``.

    ``errno`` is 0 when ``ret`` is not -1. Args are ints (negative or up to 2**64-1)
    or cdata pointers, at most six; missing ones are passed as 0.
    """
    if len(args) > 6:
        raise ValueError(f"a syscall takes at most 6 args, got {len(args)}")
    # Pad to six: syscall() is variadic and would hand the kernel stale registers otherwise.
    padded = [_long(a) for a in args] + [_ZERO] * (6 - len(args))
    ret = libc.syscall(ffi.cast("long", nr), *padded)
    return ret, (ffi.errno if ret == -1 else 0)


def _check(ret: int, what: str) -> int:
    if ret == -1:
        err = ffi.errno
        raise SeccompError(err, f"{what}: {_errno.errorcode.get(err, err)}")
    return ret


def set_no_new_privs() -> None:
    """Set NO_NEW_PRIVS for this thread: execve can then never gain privileges.

    It is the price of installing a filter without CAP_SYS_ADMIN, and it is inherited
    across fork and execve and cannot be unset.
    """
    one, zero = ffi.cast("unsigned long", 1), ffi.cast("unsigned long", 0)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, one, zero, zero, zero), "prctl(PR_SET_NO_NEW_PRIVS)")


def no_new_privs() -> bool:
    """Whether NO_NEW_PRIVS is set for the calling thread."""
    zero = ffi.cast("unsigned long", 0)
    return bool(_check(libc.prctl(PR_GET_NO_NEW_PRIVS, zero, zero, zero, zero), "prctl"))


@cache
def _seccomp_nr() -> int:
    return native_arch().number("seccomp")


def _seccomp(op: int, flags: int, arg: object) -> tuple[int, int]:
    return raw_syscall(_seccomp_nr(), op, flags, arg)


def _install_message(err: int, flags: int) -> str:
    if err == _errno.EACCES:
        return (
            "the kernel refused the filter (EACCES): set NO_NEW_PRIVS first "
            "(callgate.kernel.binding.set_no_new_privs) or hold CAP_SYS_ADMIN"
        )
    if err == _errno.EINVAL:
        return (
            "the kernel refused the program or its flags (EINVAL); the program must pass "
            "the kernel's verifier: run it through callgate's verifier/`callgate emu` to "
            "see which rule, and check the flags "
            f"{flags:#x} (NEW_LISTENER with TSYNC needs TSYNC_ESRCH)"
        )
    if err == _errno.EFAULT:
        return "the kernel could not read the program (EFAULT): the filter pointer is invalid"
    if err == _errno.ESRCH:
        return (
            "TSYNC could not synchronise a thread (ESRCH; TSYNC_ESRCH hides which): some "
            "thread runs a seccomp filter that is not an ancestor of this thread's; "
            "install before starting threads or from a thread with the same filters"
        )
    if err == _errno.EBUSY:
        return (
            "a seccomp listener already exists in this filter tree (EBUSY): only one "
            "NEW_LISTENER filter may be installed per process tree"
        )
    if err == _errno.ENOMEM:
        return (
            "the kernel ran out of filter space (ENOMEM): all filters of a thread may hold "
            "at most 32768 instructions together; merge or shrink the programs"
        )
    if err == _errno.EOPNOTSUPP:
        return f"this kernel does not support the filter flags {flags:#x} (EOPNOTSUPP)"
    return f"seccomp(SECCOMP_SET_MODE_FILTER) failed: {_errno.errorcode.get(err, err)}"


def install_filter(program: bytes | Sequence[Insn], flags: int = 0) -> int:
    """Install a classic-BPF seccomp filter on the calling thread (all threads with TSYNC).

    ``program`` is raw ``struct sock_filter`` bytes or instructions. Returns the
    listener fd when ``flags`` has NEW_LISTENER (the caller owns and must close
    it), else 0. Raises :class:`SeccompInstallError` with the kernel's errno.
    """
    raw = program if isinstance(program, bytes | bytearray) else pack(program)
    count = len(unpack(bytes(raw)))  # rejects a ragged byte string with a clear message
    if count > BPF_MAXINSNS:
        # struct sock_fprog.len is 16 bits: never let a long program wrap around it.
        raise SeccompInstallError(
            _errno.EINVAL,
            f"the program has {count} instructions; the kernel accepts at most {BPF_MAXINSNS}",
        )
    filters = ffi.new("struct sock_filter[]", max(count, 1))
    ffi.memmove(filters, bytes(raw), len(raw))
    fprog = ffi.new("struct sock_fprog *", {"len": count, "filter": filters})
    ret, err = _seccomp(SECCOMP_SET_MODE_FILTER, flags, fprog)
    if ret == -1:
        raise SeccompInstallError(err, _install_message(err, flags))
    listener = flags & SECCOMP_FILTER_FLAG_NEW_LISTENER
    if ret > 0 and flags & SECCOMP_FILTER_FLAG_TSYNC and not listener:
        raise SeccompInstallError(
            _errno.ESRCH,
            f"TSYNC could not synchronise thread {ret}: it runs a seccomp filter that is not "
            "an ancestor of this thread's; install before it starts or from a thread with "
            "the same filters",
            tid=ret,
        )
    return ret


def action_available(action: int) -> bool:
    """Whether the running kernel knows the seccomp action ``action`` (``SECCOMP_RET_*``)."""
    value = ffi.new("uint32_t *", action & 0xFFFFFFFF)
    ret, err = _seccomp(SECCOMP_GET_ACTION_AVAIL, 0, value)
    if ret == 0:
        return True
    if err == _errno.EOPNOTSUPP:
        return False
    raise SeccompError(err, f"seccomp(SECCOMP_GET_ACTION_AVAIL): {_errno.errorcode.get(err)}")


def notif_sizes() -> NotifSizes:
    """The running kernel's USER_NOTIF struct sizes, to check our layouts against."""
    sizes = ffi.new("struct seccomp_notif_sizes *")
    ret, err = _seccomp(SECCOMP_GET_NOTIF_SIZES, 0, sizes)
    if ret == -1:
        raise SeccompError(err, f"seccomp(SECCOMP_GET_NOTIF_SIZES): {_errno.errorcode.get(err)}")
    return NotifSizes(sizes.seccomp_notif, sizes.seccomp_notif_resp, sizes.seccomp_data)


def _ioctl(fd: int, request: int, arg: object, what: str) -> int:
    while True:
        ret: int = libc.ioctl(fd, ffi.cast("unsigned long", request), arg)
        if ret != -1:
            return ret
        err = ffi.errno
        if err == _errno.EINTR:
            continue  # PEP 475: retry; pending Python signal handlers run between tries
        if err == _errno.ENOENT:
            raise SeccompError(
                err,
                f"{what}: the notification is gone (ENOENT): the target was killed or its "
                "syscall interrupted by a signal; nothing to answer",
            )
        raise SeccompError(err, f"{what} on fd {fd}: {_errno.errorcode.get(err, err)}")


def notif_recv(fd: int) -> Notification:
    """Block until a USER_NOTIF syscall arrives on listener ``fd`` and return it."""
    notif = ffi.new("struct seccomp_notif *")  # zeroed, as the kernel requires
    _ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, notif, "SECCOMP_IOCTL_NOTIF_RECV")
    d = notif.data
    data = SeccompData.make(d.nr, d.arch, tuple(d.args), ip=d.instruction_pointer)
    return Notification(notif.id, notif.pid, notif.flags, data)


def notif_send(fd: int, id: int, val: int = 0, error: int = 0, flags: int = 0) -> None:
    """Answer notification ``id``: return ``val``, or fail with ``-error`` (a positive errno).

    With ``flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE`` (and val = error = 0) the kernel
    runs the syscall itself, with whatever arguments are in memory *now*.
    """
    resp = ffi.new(
        "struct seccomp_notif_resp *", {"id": id, "val": val, "error": -error, "flags": flags}
    )
    _ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp, "SECCOMP_IOCTL_NOTIF_SEND")


def notif_id_valid(fd: int, id: int) -> bool:
    """Whether notification ``id`` is still pending (its target has not died or moved on).

    Check it after reading the target's memory: a recycled pid could otherwise
    have handed you someone else's memory.
    """
    value = ffi.new("uint64_t *", id)
    ret = libc.ioctl(fd, ffi.cast("unsigned long", SECCOMP_IOCTL_NOTIF_ID_VALID), value)
    if ret == 0:
        return True
    err = ffi.errno
    if err == _errno.ENOENT:
        return False
    raise SeccompError(err, f"SECCOMP_IOCTL_NOTIF_ID_VALID: {_errno.errorcode.get(err, err)}")


def notif_addfd(
    fd: int, id: int, srcfd: int, *, newfd: int = 0, newfd_flags: int = 0, flags: int = 0
) -> int:
    """Copy our ``srcfd`` into the target of notification ``id``; return its number there.

    ``flags`` may hold ``SECCOMP_ADDFD_FLAG_SETFD`` (use ``newfd``) and
    ``SECCOMP_ADDFD_FLAG_SEND`` (also answer the syscall with the new fd).
    ``newfd_flags`` takes ``O_CLOEXEC``.
    """
    addfd = ffi.new(
        "struct seccomp_notif_addfd *",
        {"id": id, "flags": flags, "srcfd": srcfd, "newfd": newfd, "newfd_flags": newfd_flags},
    )
    return _ioctl(fd, SECCOMP_IOCTL_NOTIF_ADDFD, addfd, "SECCOMP_IOCTL_NOTIF_ADDFD")
