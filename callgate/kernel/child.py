"""The fork-based kernel oracle: run code, or probe syscalls, in a sacrificial child.

A seccomp filter can never be removed, so callgate only installs one in a forked
child. :func:`run_in_child` runs a function there and brings its result back;
:func:`probe_syscalls` installs a program and reports, per syscall, what the
kernel did: returned a value, failed with an errno, trapped (with the TRAP's
16-bit data as ``si_errno``) or killed the process.

The probe records outcomes in shared memory, so nothing after the install needs
a syscall to report: a filter that forbids ``write`` or ``exit_group`` still
gives exact answers.
"""

from __future__ import annotations

import faulthandler
import mmap
import os
import pickle
import resource
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_TRAP
from callgate.bpf.insn import Insn, unpack
from callgate.bpf.opcodes import BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W
from callgate.bpf.seccomp_data import OFF_NR, U64_MASK
from callgate.errors import CallgateError
from callgate.kernel.binding import (
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    ffi,
    install_filter,
    libc,
    raw_syscall,
    set_no_new_privs,
)

T = TypeVar("T")


class ChildError(CallgateError, RuntimeError):
    """The child did not produce a result: it raised, was killed, or timed out."""


@dataclass(frozen=True, slots=True)
class ChildResult(Generic[T]):
    """How a forked child ended: exit code or killing signal, and its value or error text."""

    exit_code: int | None
    signal: int | None
    value: T | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    def describe(self) -> str:
        if self.error is not None:
            return self.error
        if self.signal is not None:
            return f"child killed by {signal.Signals(self.signal).name}"
        return f"child exited with status {self.exit_code}"

    def unwrap(self) -> T:
        """The child's return value, or :class:`ChildError` saying why there is none."""
        if not self.ok:
            raise ChildError(self.describe())
        return self.value  # type: ignore[return-value]  # ok: the child returned its T


# In a child made by run_in_child: the fd its result goes back through.
_report_fd: int | None = None


def child_report_fd() -> int | None:
    """The fd a :func:`run_in_child` child reports through (None elsewhere).

    Code that closes fds in the child (lockdown) keeps this one so the result
    still reaches the parent.
    """
    return _report_fd


def _child_main(fn: Callable[[], Any], write_fd: int) -> None:
    """Run ``fn`` and report over ``write_fd``; never returns (always ``os._exit``)."""
    global _report_fd
    _report_fd = write_fd
    status = 1
    try:
        # A KILL action dumps core by default; nobody wants core files from tests.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Under a filter that denies exit_group and exit, glibc's _exit ends on a
        # faulting instruction; faulthandler (on under pytest) would catch that fault
        # forever, since its own exit path is denied too.
        faulthandler.disable()
        try:
            payload = pickle.dumps(("ok", fn()))
            status = 0
        except BaseException:
            payload = pickle.dumps(("error", traceback.format_exc()))
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view) :]
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _read_available(fd: int, chunks: list[bytes]) -> bool:
    """Read what is in the pipe now; False at end of file."""
    data = os.read(fd, 65536)
    if data:
        chunks.append(data)
    return bool(data)


def run_in_child(fn: Callable[[], T], *, timeout: float = 10.0) -> ChildResult[T]:
    """Fork, run ``fn`` in the child, and return how it ended and what it returned.

    The value must be picklable. The child is killed with SIGKILL after
    ``timeout`` seconds. Grandchildren the child leaves behind may keep running,
    but never hold up the parent: it stops waiting as soon as the child exits.

    Only the forking thread survives in the child. Once this process has compiled
    wasm, wasmtime's compile threads are gone in the child and compiling again
    there hangs or crashes: do wasm work in a fresh interpreter (a subprocess).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        try:
            os.close(read_fd)
        finally:
            _child_main(fn, write_fd)
    os.close(write_fd)
    chunks: list[bytes] = []
    timed_out = False
    try:
        pidfd = os.pidfd_open(pid)
        try:
            timed_out = not _collect(read_fd, pidfd, chunks, time.monotonic() + timeout)
        finally:
            os.close(pidfd)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    except BaseException:  # interrupted while waiting: leave no child behind
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_fd)
    return _result(status, b"".join(chunks), timed_out, timeout)


def _collect(read_fd: int, pidfd: int, chunks: list[bytes], deadline: float) -> bool:
    """Gather the child's output until it exits; False on timeout."""
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    pipe_open = True
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready = dict(poller.poll(left * 1000))
        if pipe_open and read_fd in ready:
            pipe_open = _read_available(read_fd, chunks)
            if not pipe_open:
                poller.unregister(read_fd)
        if pidfd in ready:
            os.set_blocking(read_fd, False)
            try:
                while pipe_open and _read_available(read_fd, chunks):
                    pass
            except BlockingIOError:
                pass  # a grandchild still holds the pipe open; what the child wrote is read
            return True


def _result(status: int, payload: bytes, timed_out: bool, timeout: float) -> ChildResult[Any]:
    exit_code = os.waitstatus_to_exitcode(status)
    code, sig = (exit_code, None) if exit_code >= 0 else (None, -exit_code)
    if timed_out:
        return ChildResult(code, sig, None, f"child timed out after {timeout}s and was killed")
    if not payload:
        return ChildResult(code, sig, None, None)
    try:
        kind, value = pickle.loads(payload)
    except Exception as exc:  # truncated: the child died while writing
        return ChildResult(code, sig, None, f"child's result was unreadable: {exc}")
    if kind == "error":
        return ChildResult(code, sig, None, value)
    return ChildResult(code, sig, value, None)


# --- syscall probing ---------------------------------------------------------------------

OutcomeKind = Literal["returned", "errno", "trap", "killed"]


class SyscallOutcome(NamedTuple):
    """What the kernel did with one probed syscall.

    ``value`` is the return value (``returned``), the errno (``errno``), the TRAP's
    ``si_errno`` (``trap``) or the signal that killed the process (``killed``).
    """

    kind: OutcomeKind
    value: int


ffi.cdef(
    """
    /* siginfo_t on 64-bit Linux, as far as a seccomp SIGSYS fills it (_sigsys member). */
    typedef struct {
        int si_signo;          /* offset 0 */
        int si_errno;          /* offset 4: the TRAP's 16-bit data */
        int si_code;           /* offset 8: SYS_SECCOMP (1) */
        int _pad;              /* the union is 8-byte aligned: offset 16 */
        void *si_call_addr;    /* offset 16: instruction after the syscall */
        int si_syscall;        /* offset 24 */
        unsigned int si_arch;  /* offset 28: AUDIT_ARCH_* */
        char _rest[96];        /* sizeof(siginfo_t) == 128 */
    } siginfo_t;

    /* glibc's struct sigaction (generic layout: x86_64, aarch64, riscv64, s390x). */
    struct sigaction {
        void (*sa_sigaction)(int, siginfo_t *, void *);
        unsigned long sa_mask[16];
        int sa_flags;
        void (*sa_restorer)(void);
    };
    int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact);

    /* Shared between the probing child and the parent. */
    struct probe_trap {
        int32_t count;
        int32_t si_errno;
        int32_t si_code;
        int32_t si_syscall;
        uint32_t si_arch;
        uint32_t _pad;
        uint64_t si_call_addr;
    };
    struct probe_slot {
        int32_t state;
        int32_t kind;
        int64_t value;
        int32_t traps_at_start;
        int32_t _pad;
    };
    """
)

_SA_SIGINFO = 4
_STARTED, _DONE = 1, 2
_KINDS: tuple[OutcomeKind, ...] = ("returned", "errno", "trap")  # probe_slot.kind indexes this
_RETURNED, _ERRNO, _TRAP = range(3)

# The trap record the SIGSYS handler writes to; set in the child before the filter.
_trap_record: Any = None


def _on_sigsys(signo: int, info: Any, context: Any) -> None:
    """SA_SIGINFO handler: copy the seccomp fields into shared memory and return.

    Returning resumes after the trapped syscall, so probing can go on.
    """
    rec = _trap_record
    if rec is not None:
        rec.si_errno = info.si_errno
        rec.si_code = info.si_code
        rec.si_syscall = info.si_syscall
        rec.si_arch = info.si_arch
        rec.si_call_addr = int(ffi.cast("uintptr_t", info.si_call_addr))
        rec.count += 1


@cache
def _sigsys_callback() -> Any:
    """The handler as a C function pointer, made once in the parent.

    Made before any filter exists: creating a callback needs executable memory,
    which a W^X filter may deny.
    """
    return ffi.callback("void(int, siginfo_t *, void *)", _on_sigsys)


def _install_sigsys_handler() -> None:
    act = ffi.new("struct sigaction *")
    act.sa_sigaction = _sigsys_callback()
    act.sa_flags = _SA_SIGINFO
    if libc.sigaction(signal.SIGSYS, act, ffi.NULL) != 0:
        raise OSError(ffi.errno, "sigaction(SIGSYS)")


class _SharedRecords:
    """Anonymous shared memory: one trap record and one slot per probed call."""

    def __init__(self, calls: int) -> None:
        trap_size = ffi.sizeof("struct probe_trap")
        self._map = mmap.mmap(-1, trap_size + calls * ffi.sizeof("struct probe_slot"))
        self._buf = ffi.from_buffer(self._map)
        self.trap = ffi.cast("struct probe_trap *", self._buf)
        self.slots = ffi.cast("struct probe_slot *", self._buf + trap_size)

    def close(self) -> None:
        del self.trap, self.slots
        ffi.release(self._buf)
        self._map.close()


def _probe_child(
    program: bytes | Sequence[Insn],
    calls: Sequence[tuple[int, Sequence[int]]],
    first: int,
    flags: int,
    shared: _SharedRecords,
) -> None:
    global _trap_record
    prepared = [
        (nr, [ffi.cast("long", a & U64_MASK) for a in (*args, 0, 0, 0, 0, 0, 0)[:6]])
        for nr, args in calls
    ]
    trap, slots = shared.trap, shared.slots
    _trap_record = trap
    _install_sigsys_handler()
    set_no_new_privs()
    listener = install_filter(program, flags)
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER:
        # Nobody will answer: with the listener closed, USER_NOTIF fails with ENOSYS.
        os.close(listener)
    for i in range(first, len(prepared)):
        nr, args = prepared[i]
        slot = slots[i]
        slot.traps_at_start = trap.count
        slot.state = _STARTED
        ret = libc.syscall(nr, *args)
        err = ffi.errno
        if trap.count != slot.traps_at_start:
            slot.kind, slot.value = _TRAP, trap.si_errno
        elif ret == -1:
            slot.kind, slot.value = _ERRNO, err
        else:
            slot.kind, slot.value = _RETURNED, ret
        slot.state = _DONE


def probe_syscalls(
    program: bytes | Sequence[Insn],
    calls: Sequence[tuple[int, Sequence[int]]],
    *,
    flags: int = 0,
    timeout: float = 10.0,
) -> list[SyscallOutcome]:
    """Install ``program`` in a forked child (after NO_NEW_PRIVS) and make each call in order.

    A call that kills the child is reported as ``killed``; a fresh child then
    re-installs the program for the calls after it. Raises :class:`ChildError`
    if the install fails or the child dies outside any probed call.
    """
    if isinstance(program, bytes | bytearray):
        unpack(bytes(program))  # a ragged byte string is the caller's error, not the child's
    for nr, args in calls:
        if len(args) > 6:
            raise ValueError(f"syscall {nr}: at most 6 args, got {len(args)}")
    outcomes: list[SyscallOutcome] = []
    if not calls:
        return outcomes
    _sigsys_callback()
    shared = _SharedRecords(len(calls))
    try:
        while len(outcomes) < len(calls):
            first = len(outcomes)
            result = run_in_child(
                partial(_probe_child, program, calls, first, flags, shared),
                timeout=timeout,
            )
            for i in range(first, len(calls)):
                slot = shared.slots[i]
                if slot.state == _DONE:
                    outcomes.append(SyscallOutcome(_KINDS[slot.kind], int(slot.value)))
                    continue
                if slot.state == _STARTED and shared.trap.count != slot.traps_at_start:
                    # The handler ran, then the way back failed (the filter also hit
                    # rt_sigreturn): the kernel's action for this call was still TRAP.
                    outcomes.append(SyscallOutcome("trap", int(shared.trap.si_errno)))
                    break
                if slot.state == _STARTED and result.signal is not None and result.error is None:
                    outcomes.append(SyscallOutcome("killed", result.signal))
                    break
                raise ChildError(
                    f"probing syscall #{i} (nr {calls[i][0]}) failed: {result.describe()}"
                )
    finally:
        shared.close()
    return outcomes


def _trap_probe_program(nr: int) -> list[Insn]:
    return [
        Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, OFF_NR),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, nr),
        Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_TRAP),
        Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW),
    ]


_UNASSIGNED_NR = 1000


@cache
def syscall_instruction_pointer() -> int:
    """The ``instruction_pointer`` the kernel reports for a syscall made by :func:`raw_syscall`.

    It is the address right after the ``syscall`` instruction inside libc's
    ``syscall()``, which forked children share with this process. It is read from
    ``si_call_addr`` of a TRAP (the kernel fills both from the same register).
    """
    shared = _SharedRecords(1)
    try:
        program = _trap_probe_program(_UNASSIGNED_NR)
        result = run_in_child(lambda: _probe_child(program, [(_UNASSIGNED_NR, ())], 0, 0, shared))
        if shared.trap.count != 1:
            raise ChildError(f"the TRAP probe did not trap: {result.describe()}")
        return int(shared.trap.si_call_addr)
    finally:
        shared.close()


__all__ = [
    "ChildError",
    "ChildResult",
    "SyscallOutcome",
    "child_report_fd",
    "probe_syscalls",
    "raw_syscall",
    "run_in_child",
    "syscall_instruction_pointer",
]
