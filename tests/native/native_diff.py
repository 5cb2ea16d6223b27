"""The differential harness: the native gate core against the Python runtime, in process.

Two *worlds* are built from one :class:`Scenario`, identical but for one thing: world A
binds its gates to the native core (``callgate/native/csrc/gate.c``), world B is pure
Python (what ``CALLGATE_PURE_PYTHON=1`` runs). Each world has its own guest memory, its
own WASI state (fd table with regular files, directories, pipes, ``/dev/null``, sockets,
fed stdin, captured stdout and exotic entries, each world with its own host copies),
its own output budget, deadline and audit sink. Every call is made in both worlds with
the same slot values, and after every call the harness requires the same

* outcome (results, or the exception the call ends with, type and message),
* guest memory (byte for byte; a ``random_get``'s bytes are compared outside its buffer),
* counters (C's plus Python's in world A), output budget used, audit records,
* host file offsets; and at the end of a scenario the same file contents, pipe and
  socket contents, captured stdio, directory trees and fd tables.

The filter's verdict is checked three ways on every call: C's interpreter (or constant),
the Python filter the runtime uses, and the reference interpreter
(:func:`callgate.bpf.interpret`) on a real ``seccomp_data`` record.

No wasmtime is involved: world A calls ``cg_gate_entry`` through cffi with a fake memory
(``cg_test_memory``), and both worlds run the production dispatcher, WASI gates and
Plugin methods (borrowed by :class:`Host`). That makes a case cost tens of microseconds,
so CI runs hundreds of thousands. Run directly (``python native_diff.py SEED CASES``)
it is what the sanitizer test runs under AddressSanitizer.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from callgate.arch import AUDIT_ARCH_CALLGATE
from callgate.bpf import actions as A
from callgate.bpf.evaluator import Evaluator
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.gates.app import AppGates
from callgate.gates.memory import GuestMemory
from callgate.gates.spec import GateSpec
from callgate.gates.table import GateTable
from callgate.gates.wasi import types as T
from callgate.gates.wasi.fdtable import FdEntry
from callgate.gates.wasi.mirror import NativeWasiMirror
from callgate.gates.wasi.provider import Preopen, WasiConfig, WasiProvider
from callgate.gates.wasi.state import WasiState
from callgate.native import gate as native_gate
from callgate.policy.compiler import compile_section
from callgate.policy.model import ArgCheck, Op, Rule, Section
from callgate.runtime import audit, dispatch
from callgate.runtime.dispatch import GateBinding
from callgate.runtime.filter_plan import ALLOW_ALL, FilterPlan
from callgate.runtime.limits import Limits
from callgate.runtime.plugin import Plugin

MEM = 1 << 18  # 256 KiB of guest memory: room for reads past one 64 KiB chunk
PY_TRAP = 0x7  # what a Python trap is, in the harness (Host._trap)
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

# The gates a scenario imports: every C body, the Python gates that change the fd table
# (so the mirror must follow), and app gates in each deny convention.
WASI_GATES = (
    "clock_time_get", "clock_res_get", "random_get", "args_get", "args_sizes_get",
    "environ_get", "environ_sizes_get", "fd_prestat_get", "fd_prestat_dir_name",
    "fd_fdstat_get", "fd_read", "fd_write", "fd_pread", "fd_pwrite", "fd_seek", "fd_tell",
    "fd_close", "fd_renumber", "fd_fdstat_set_flags", "fd_fdstat_set_rights", "path_open",
    "sched_yield",
)
APP_GATES = ("app_neg", "app_float", "app_many", "app_void")
IO_GATES = frozenset({"fd_read", "fd_write", "fd_pread", "fd_pwrite", "fd_seek", "fd_tell"})

ACTIONS = (
    A.SECCOMP_RET_ALLOW, A.SECCOMP_RET_ALLOW, A.SECCOMP_RET_ALLOW, A.SECCOMP_RET_LOG,
    A.SECCOMP_RET_ERRNO | 0, A.SECCOMP_RET_ERRNO | 1, A.SECCOMP_RET_ERRNO | 8,
    A.SECCOMP_RET_ERRNO | 4095, A.SECCOMP_RET_ERRNO | 4096, A.SECCOMP_RET_ERRNO | 0xFFFF,
    A.SECCOMP_RET_KILL_PROCESS, A.SECCOMP_RET_KILL_THREAD, A.SECCOMP_RET_TRAP | 3,
    A.SECCOMP_RET_TRACE | 7, A.SECCOMP_RET_USER_NOTIF, 0x12340000,
)
EDGES64 = (0, 1, 2, 3, 4, 7, 0x7F, 0x80, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE,
           0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63, M64 - 1, M64)


@dataclass(frozen=True)
class Scenario:
    """What one batch of calls runs against (hypothesis draws these)."""

    seed: int
    calls: int = 400
    default: int = A.SECCOMP_RET_ALLOW
    rules: int = 4               # random rules in the policy (0: allow everything)
    deadline: bool = False       # a deadline already passed (blocking waits end at once)
    output_cap: int | None = None
    extra_fds: tuple[str, ...] = ("file", "file", "dir", "pipe_r", "pipe_w", "null")
    args: tuple[str, ...] = ("prog", "-x")
    env: tuple[tuple[str, str], ...] = (("HOME", "/"),)


# -- the plugin side ------------------------------------------------------------------------

class CapturingSink(audit.AuditSink):
    """An audit sink that keeps what it writes (no rate limit: every record compared)."""

    def __init__(self) -> None:
        super().__init__(rate=None)
        self.written: list[tuple[str, int, str, tuple[int, ...], str, str, int]] = []

    def _write(self, record: audit.AuditRecord, kind: int) -> None:
        self.written.append((record.gate, record.number, record.module, record.args,
                             record.action, record.outcome, kind))


class Host:
    """What gate code sees as its plugin, built from :class:`Plugin`'s own methods, so the
    harness runs the production output budget, deadline, native failure and audit flush."""

    charge_output = Plugin.charge_output
    _output_error = Plugin._output_error
    output_used = Plugin.output_used
    remaining_time = Plugin.remaining_time
    check_deadline = Plugin.check_deadline
    _deadline_error = Plugin._deadline_error
    _poison = Plugin._poison
    _native_pending = Plugin._native_pending
    _flush_native_audit = Plugin._flush_native_audit
    _flush_native_from_c = Plugin._flush_native_from_c

    def __init__(self, name: str, memory: bytearray, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.deadline: float | None = None
        self._native: native_gate.NativePlugin | None = None
        self._output_used = 0
        self._pending: BaseException | None = None
        self._poisoned: BaseException | None = None
        self._usable = True
        self._alive = [True]
        self._cancellable = False  # Plugin(cancellable=True) is never bound natively
        self._cancel_requested = False
        self.broker = None
        self.tracer = None
        self.audit_sink = CapturingSink()
        self.plan: FilterPlan | None = None
        self._bindings: list[GateBinding] = []
        self._mem = GuestMemory.over(memory)

    def _memory_of(self, caller: object) -> GuestMemory:
        return self._mem

    def _trap(self, exc: BaseException) -> int:
        if self._pending is None:
            self._pending = exc
        return PY_TRAP

    def revive(self) -> None:
        """After a compared kill: the next call starts from a live plugin again."""
        self._poisoned = None
        self._usable = True
        self._alive[0] = True
        if self._native is not None:
            self._native.shared.alive = 1

    def reset_output(self) -> None:
        if self._native is not None:
            self._native.shared.output_used = 0
        else:
            self._output_used = 0


def _app_gates() -> AppGates:
    gates = AppGates()
    gates.add("app_neg", lambda call, a, b: (a ^ b) & M32, params=("i32", "i64"),
              results=("i32",), number=0x1000, uses_memory=False)
    gates.add("app_float", lambda call, x: x * 2.0, params=("f64",), results=("f64",),
              number=0x1001, uses_memory=False)
    gates.add("app_many", lambda call, *a: sum(a) & M64, params=("i64",) * 7,
              results=("i64",), number=0x1002, uses_memory=False)
    gates.add("app_void", lambda call, a: None, params=("i32",), results=(),
              number=0x1003, uses_memory=False)
    return gates


# -- worlds -----------------------------------------------------------------------------------

@dataclass
class Extra:
    """An fd the scenario adds beyond stdio and the first preopen."""

    kind: str
    entry: FdEntry | None = None
    fd: int = -1
    host: int = -1          # this world's host fd
    peer: int = -1          # the other end (pipes, sockets)
    path: str = ""


class World:
    """One side of the comparison: guest memory, WASI state, bindings."""

    def __init__(self, scenario: Scenario, program: tuple[Insn, ...], native: bool,
                 tag: str) -> None:
        rng = random.Random(scenario.seed)  # the same draws in both worlds
        self.native_side = native
        self.root = tempfile.mkdtemp(prefix=f"cg-diff-{tag}-")
        self.memory = bytearray(MEM)
        self.host = Host("diff", self.memory,
                         Limits(output=scenario.output_cap, timeout=1.0))
        self.host.plan = FilterPlan(Evaluator(program, AUDIT_ARCH_CALLGATE), "compiled")
        if scenario.deadline:
            self.host.deadline = time.monotonic() - 1.0
        self.closers: list[Callable[[], None]] = []
        self._tree(rng)
        self.stdout = bytearray()
        self.stderr = bytearray()
        config = WasiConfig(args=list(scenario.args), env=dict(scenario.env),
                            preopens=[Preopen(os.path.join(self.root, "pre"), "/data"),
                                      Preopen(os.path.join(self.root, "ro"), "/ro",
                                              readonly=True)],
                            stdin=bytes(rng.randrange(256) for _ in range(rng.randrange(64))),
                            stdout=self.stdout, stderr=self.stderr)
        self.wasi = WasiProvider(config)
        self.apps = _app_gates()
        self.table = GateTable([self.wasi, self.apps])
        self.state = WasiState(config)
        self.extras = [self._extra(kind, rng, scenario) for kind in scenario.extra_fds]
        self.program = program
        self.plan = FilterPlan(Evaluator(program, AUDIT_ARCH_CALLGATE,
                                         self.table.arch.numbers.values()), "compiled")
        specs = {spec.name: spec for spec in self.table}
        self.specs: list[GateSpec] = [specs[name] for name in (*WASI_GATES, *APP_GATES)]
        # Import indices to draw calls from, the C bodies that move bytes three times over.
        self.weighted = [ip for ip, spec in enumerate(self.specs)
                         for _ in range(3 if spec.name in IO_GATES else 1)]
        self.native: native_gate.NativePlugin | None = None
        if native:
            self._test_memory = native_gate.core().ffi.new("cg_test_memory *")
            self._test_memory.base = native_gate.core().ffi.cast("uint8_t *",
                                                                  self.host._mem.base)
            self._test_memory.size = MEM
            data, size, trap_new = native_gate.test_memory_api()
            api = native_gate.HostApi(trap_new, data, size, 0, _address(dispatch._FALLBACK),
                                      _address(dispatch._FLUSH))
            plugin_id = next(dispatch._ids)
            ctx = int(native_gate.core().ffi.cast("uintptr_t", self._test_memory))
            self.native = native_gate.NativePlugin(api, plugin_id, len(self.specs), ctx)
            self.native.set_memory(b"\0" * 16)
            self.native.set_output_cap(scenario.output_cap)
            self.native.set_deadline(self.host.deadline)
            dispatch._PLUGINS[plugin_id] = weakref.ref(self.host)  # type: ignore[arg-type]
            self.host._native = self.native
            NativeWasiMirror(self.native, self.state)
        app_state: dict[str, object] = {}
        for ip, spec in enumerate(self.specs):
            state = self.state if spec.module == self.wasi.module else app_state
            constant, filter_fn = self.plan.for_gate(spec.number)
            binding = GateBinding(self.host, spec, ip, state, filter_fn,  # type: ignore[arg-type]
                                  constant)
            if self.native is not None:
                dispatch.bind_native(binding, self.native, self.plan.program, constant)
            self.host._bindings.append(binding)

    # -- setup --------------------------------------------------------------------------------

    def _tree(self, rng: random.Random) -> None:
        for sub in ("pre", "pre/sub", "ro", "other"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        for name in ("pre/a", "pre/b", "pre/sub/c", "ro/r", "other/o"):
            with open(os.path.join(self.root, name), "wb") as f:
                f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(300))))

    def _extra(self, kind: str, rng: random.Random, scenario: Scenario) -> Extra:
        extra = Extra(kind)
        rights = _rights(rng, T.RIGHTS_FILE)
        flags = rng.choice((0, 0, 0, T.FDFLAGS_NONBLOCK, T.FDFLAGS_APPEND))
        if kind == "file":
            extra.path = os.path.join(self.root, f"file{rng.randrange(1 << 30)}")
            size = rng.choice((0, 10, 4096, 70000, 200000))
            with open(extra.path, "wb") as f:
                f.write(rng.randbytes(size))
            host = os.open(extra.path, os.O_RDWR | os.O_CLOEXEC
                           | (os.O_APPEND if flags & T.FDFLAGS_APPEND else 0))
            os.lseek(host, rng.choice((0, 0, size // 2, size)), os.SEEK_SET)
            entry = FdEntry(T.FILETYPE_REGULAR_FILE, rights, _rights(rng, T.RIGHTS_ALL),
                            _rights(rng, T.RIGHTS_ALL), host_fd=host,
                            flags=flags & ~T.FDFLAGS_NONBLOCK)
        elif kind == "dir":
            host = os.open(os.path.join(self.root, "other"), os.O_RDONLY | os.O_DIRECTORY)
            name = rng.choice(("/other", "/ünï", "x" * 300, "/\udc80bad", ""))
            entry = FdEntry(T.FILETYPE_DIRECTORY, _rights(rng, T.RIGHTS_DIRECTORY),
                            T.SHOWN_PREOPEN_BASE, T.SHOWN_PREOPEN_INHERITING, host_fd=host,
                            preopen=name or None)
        elif kind in ("pipe_r", "pipe_w"):
            r, w = os.pipe2(os.O_CLOEXEC)
            nonblock = bool(flags & T.FDFLAGS_NONBLOCK) or not scenario.deadline
            if kind == "pipe_r":
                host, extra.peer = r, w
                os.write(w, rng.randbytes(rng.choice((0, 5, 4096, 20000))))
            else:
                host, extra.peer = w, r
                os.set_blocking(r, False)
                if rng.random() < 0.3:  # full: nothing can be written now
                    os.set_blocking(w, False)
                    with contextlib.suppress(BlockingIOError):
                        while True:
                            os.write(w, b"\0" * 65536)
            os.set_blocking(host, not nonblock)
            entry = FdEntry(T.FILETYPE_UNKNOWN, _rights(rng, T.RIGHTS_STREAM),
                            _rights(rng, T.RIGHTS_ALL), 0, host_fd=host,
                            flags=T.FDFLAGS_NONBLOCK if nonblock else 0)
        elif kind == "null":
            host = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            entry = FdEntry(T.FILETYPE_CHARACTER_DEVICE, _rights(rng, T.RIGHTS_STREAM),
                            T.RIGHTS_STREAM, 0, host_fd=host, flags=flags & T.FDFLAGS_NONBLOCK)
        elif kind == "sock":
            a, b = socket.socketpair()
            a.setblocking(False)
            extra.peer = b.detach()
            host = a.fileno()
            entry = FdEntry(T.FILETYPE_SOCKET_STREAM, T.RIGHTS_SOCKET, T.RIGHTS_SOCKET, 0,
                            host_fd=host, sock=a,
                            flags=T.FDFLAGS_NONBLOCK)
        elif kind == "exotic":
            host = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            entry = FdEntry(T.FILETYPE_CHARACTER_DEVICE, T.RIGHTS_STREAM, T.RIGHTS_STREAM, 0,
                            host_fd=host, flags=1 << 17)
        else:
            raise ValueError(kind)
        extra.host = host
        extra.entry = entry
        if extra.peer >= 0:
            self.closers.append(lambda fd=extra.peer: _close(fd))
        extra.fd = self.state.table.add(entry)
        if rng.random() < 0.15:  # a hole in the table
            self.state.table.close(extra.fd)
        return extra

    # -- calls -----------------------------------------------------------------------------

    def call(self, ip: int, slots: list[int]) -> tuple[Any, ...]:
        """Make one call; its outcome as comparable data."""
        binding = self.host._bindings[ip]
        spec = binding.spec
        nslots = max(len(spec.params), len(spec.results), 1)
        self.host.reset_output()
        if self.native is not None and binding.native:
            core = native_gate.core()
            raw = core.ffi.new("uint64_t[]", slots)
            ret = core.lib.cg_gate_entry(core.ffi.cast("void *", binding.native),
                                         core.ffi.NULL, raw, nslots)
            address = int(core.ffi.cast("uintptr_t", ret))
            values = [int(raw[i]) for i in range(len(slots))]
            if address == 0:
                outcome = self._ok(spec, values)
            elif address == _sentinel():
                exc = self.host._native_pending()
                if exc is None:  # the audit flush raised: Python holds it
                    exc, self.host._pending = self.host._pending, None
                outcome = _raised(exc)
            else:
                assert address == PY_TRAP, hex(address)
                exc, self.host._pending = self.host._pending, None
                outcome = _raised(exc)
        else:
            values = list(slots)
            ret = binding.callback(0, None, values, nslots)
            if ret is None:
                outcome = self._ok(spec, values)
            else:
                assert ret == PY_TRAP, ret
                exc, self.host._pending = self.host._pending, None
                outcome = _raised(exc)
        if self.native is not None:
            self.host._flush_native_audit()
        return outcome

    @staticmethod
    def _ok(spec: GateSpec, values: list[int]) -> tuple[Any, ...]:
        return ("ok", tuple(values[2 * i] for i in range(len(spec.results))))

    def counters(self) -> list[list[int]]:
        rows = [list(b.counts) for b in self.host._bindings]
        if self.native is not None:
            flat = self.native.counts()
            for b in self.host._bindings:
                if b.native:
                    rows[b.ip] = [x + y for x, y in zip(rows[b.ip], flat[b.ip * 8:b.ip * 8 + 8],
                                                        strict=True)]
        return rows

    def offsets(self) -> list[tuple[int, int]]:
        out = []
        for fd, entry in sorted(self.state.table.entries.items()):
            if entry.filetype == T.FILETYPE_REGULAR_FILE and entry.host_fd is not None:
                try:
                    out.append((fd, os.lseek(entry.host_fd, 0, os.SEEK_CUR)))
                except OSError as exc:
                    out.append((fd, -exc.errno))
        return out

    def final_state(self) -> dict[str, Any]:
        """Everything a scenario leaves behind, host fd numbers aside."""
        files = {}
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, self.root)] = f.read()
        pipes = []
        live = {id(e) for e in self.state.table.entries.values()}
        for extra in self.extras:
            if extra.kind in ("pipe_w", "sock"):  # what reached the other end, ours
                pipes.append(_drain(extra.peer))
            elif extra.kind == "pipe_r" and id(extra.entry) in live:  # what is left unread
                pipes.append(_drain(extra.host))
        table = sorted((fd, e.filetype, e.flags, e.allowed, e.rights_base, e.rights_inheriting,
                        e.preopen,
                        e.host_fd is None, e.sock is None, e.sink is None, e.fed is None)
                       for fd, e in self.state.table.entries.items())
        return {"files": files, "pipes": pipes, "stdout": bytes(self.stdout),
                "stderr": bytes(self.stderr), "table": table}

    def close(self) -> None:
        if self.native is not None:
            dispatch.forget_plugin(self.native, self.host._bindings)
            for binding in self.host._bindings:
                if binding.native:
                    native_gate.NativePlugin.free_binding(binding.native)
                    binding.native = 0
        self.state.close()
        for closer in self.closers:
            closer()
        shutil.rmtree(self.root, ignore_errors=True)


def _address(cfunc: Any) -> int:
    import ctypes
    return ctypes.cast(cfunc, ctypes.c_void_p).value or 0


def _sentinel() -> int:
    core = native_gate.core()
    return int(core.ffi.cast("uintptr_t", core.lib.cg_test_trap_sentinel()))


def _raised(exc: BaseException | None) -> tuple[Any, ...]:
    return ("raise", type(exc).__name__, str(exc))


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _drain(fd: int) -> bytes:
    out = bytearray()
    try:
        os.set_blocking(fd, False)
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    except (BlockingIOError, OSError):
        pass
    return bytes(out)


def _rights(rng: random.Random, full: int) -> int:
    r = rng.random()
    if r < 0.6:
        return full
    if r < 0.9:
        return full & rng.getrandbits(64)
    return rng.getrandbits(64)


# -- policies and arguments ---------------------------------------------------------------------

def policy_program(scenario: Scenario, table: GateTable) -> tuple[Insn, ...]:
    """A random policy over the scenario's gates, compiled for the gate arch."""
    rng = random.Random(scenario.seed ^ 0x5EED)
    if scenario.rules == 0 and scenario.default == A.SECCOMP_RET_ALLOW:
        return ALLOW_ALL
    names = (*WASI_GATES, *APP_GATES)
    rules = []
    for _ in range(scenario.rules):
        checks = []
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            op = rng.choice(list(Op))
            value = rng.choice((*EDGES64, rng.randrange(16), rng.randrange(MEM)))
            width = rng.choice((64, 64, 32))
            if width == 32:
                value &= M32
            value2 = (value & rng.getrandbits(64)) if op == Op.MASKED_EQ else None
            checks.append(ArgCheck(rng.randrange(6), op, value, value2, width))
        gates = tuple(rng.sample(names, rng.choice((1, 1, 2, 5))))
        action = A.SECCOMP_RET_ALLOW if rng.random() < 0.3 else rng.choice(ACTIONS)
        rules.append(Rule(gates, action, tuple(checks)))
    section = Section(scenario.default, tuple(rules))
    return tuple(compile_section(section, table.arch))


class Args:
    """Gate arguments with boundary and wrapping values, and the memory they point at."""

    def __init__(self, rng: random.Random, fds: list[int], max_fds: int,
                 may_block: bool) -> None:
        self.rng = rng
        self.fds = fds
        self.max_fds = max_fds
        self.may_block = may_block  # a deadline has passed, so no wait lasts
        self.io_fds: list[int] = []  # plain host fds: where C does the I/O

    def ptr(self, size: int = 8) -> int:
        r = self.rng
        x = r.random()
        if x < 0.7:
            return r.randrange(0, max(1, MEM - max(size, 1))) & ~3
        return r.choice((0, 1, MEM - 1, MEM - 4, MEM - 8, MEM - 24, MEM - size, MEM,
                         MEM + 1, 1 << 31, M32, M32 - 3, M32 - 7, M32 - size + 1, 0x10000))

    def length(self) -> int:
        r = self.rng
        x = r.random()
        if x < 0.75:
            return r.choice((0, 1, 3, 4, 8, 16, 24, 100, 4096, r.randrange(1, 2000)))
        return r.choice((65536, 65537, 70000, MEM, MEM - 1, 1 << 31, M32, r.randrange(MEM)))

    def fd(self, io: bool = False) -> int:
        r = self.rng
        if io and self.io_fds and r.random() < 0.7:
            return r.choice(self.io_fds)
        if r.random() < 0.8 and self.fds:
            return r.choice(self.fds)
        return r.choice((0, 1, 2, 3, 4, 9, 17, self.max_fds - 1, self.max_fds, 1 << 31, M32))

    def i64(self) -> int:
        r = self.rng
        return r.choice((*EDGES64, r.getrandbits(64), r.randrange(100000)))

    def iovecs(self, memory_writes: list[tuple[int, bytes]]) -> tuple[int, int]:
        """An iovec array written into memory (or a bad pointer); (ptr, count)."""
        r = self.rng
        count = r.choice((0, 1, 1, 1, 2, 3, 5, 1024, 1025, M32))
        if count > 64 or r.random() < 0.1:
            return self.ptr(), count
        ptr = r.randrange(0, MEM - 8 * count - 8) & ~7 if r.random() < 0.95 else self.ptr()
        vecs = bytearray()
        for _ in range(count):
            length = self.length() if r.random() < 0.3 else r.choice((0, 1, 16, 100, 4096,
                                                                      30000, 65536, 70000))
            buf = self.ptr(length) if r.random() < 0.2 else \
                r.randrange(0, max(1, MEM - min(length, MEM)))
            vecs += struct.pack("<II", buf & M32, length & M32)
        if ptr + len(vecs) <= MEM:
            memory_writes.append((ptr, bytes(vecs)))
        return ptr, count


def make_call(rng: random.Random, spec: GateSpec, args: Args,
              writes: list[tuple[int, bytes]]) -> list[int]:
    """Slot values for one call of ``spec`` (i32 slots may carry junk in their high half)."""
    name = spec.name
    a: list[int]
    if name in ("fd_read", "fd_write"):
        ptr, count = args.iovecs(writes)
        a = [args.fd(io=True), ptr, count, args.ptr(4)]
    elif name in ("fd_pread", "fd_pwrite"):
        ptr, count = args.iovecs(writes)
        offset = rng.choice((0, 0, 5, 4096, 70000, (1 << 63) - 1, 1 << 63, M64))
        a = [args.fd(io=True), ptr, count, offset, args.ptr(4)]
    elif name == "fd_seek":
        a = [args.fd(io=True), rng.choice((0, 0, 1, 10, M64, M64 - 9, 1 << 63, (1 << 63) - 1)),
             rng.choice((0, 1, 2, 3, M32)), args.ptr(8)]
    elif name == "fd_tell":
        a = [args.fd(io=True), args.ptr(8)]
    elif name in ("clock_time_get",):
        a = [rng.choice((0, 1, 2, 3, 4, M32)), args.i64(), args.ptr(8)]
    elif name == "clock_res_get":
        a = [rng.choice((0, 1, 2, 3, 4, M32)), args.ptr(8)]
    elif name == "random_get":
        a = [args.ptr(16), rng.choice((0, 1, 16, 100, 70000, MEM, M32))]
    elif name == "fd_prestat_dir_name":
        a = [args.fd(), args.ptr(8), rng.choice((rng.randrange(10), rng.randrange(10), 299, 300,
                                                   301, 1000, M32))]
    elif name == "fd_renumber":
        a = [args.fd(), args.fd()]
    elif name == "fd_fdstat_set_flags":
        flags = rng.choice((0, 0, 1, 4, 5, 2, 32))
        a = [args.fd(), flags if args.may_block else flags | T.FDFLAGS_NONBLOCK]
    elif name == "fd_fdstat_set_rights":
        a = [args.fd(), rng.getrandbits(64) & T.RIGHTS_ALL, rng.getrandbits(64) & T.RIGHTS_ALL]
    elif name == "path_open":
        path = rng.choice((b"a", b"b", b"sub/c", b"new", b"sub", b"../x", b"/etc", b"r"))
        at = rng.randrange(0, MEM - 64) & ~3
        writes.append((at, path))
        a = [args.fd(), rng.choice((0, 1)), at, len(path), rng.choice((0, 0, 1, 2, 9, 5)),
             _rights_arg(rng), _rights_arg(rng), rng.choice((0, 0, 1, 4)) | 4 * (
                 not args.may_block), args.ptr(4)]
    elif spec.module != "wasi_snapshot_preview1":
        if name == "app_float":
            a = [struct.unpack("<Q", struct.pack("<d", rng.uniform(-5, 5)))[0]]
        else:
            a = [args.i64() for _ in spec.params]
    else:  # two pointers, or an fd and a pointer
        a = [args.fd() if "fd" in name else args.ptr(), args.ptr()][:len(spec.params)]
    slots: list[int] = []
    for kind, value in zip(spec.params, a, strict=True):
        if kind == "i32":
            value = value & M32 | (rng.getrandbits(32) << 32 if rng.random() < 0.2 else 0)
        slots += [value & M64, 0]
    width = 2 * max(len(spec.params), len(spec.results), 1)
    return (slots + [0] * width)[:width]


def _rights_arg(rng: random.Random) -> int:
    return rng.choice((T.RIGHTS_FILE, T.RIGHTS_ALL, 0, rng.getrandbits(64)))


# -- the comparison -------------------------------------------------------------------------------

class Divergence(AssertionError):
    """C and Python decided differently."""


def _verdicts(world: World, ip: int, slots: list[int]) -> tuple[int, int, int | None]:
    """(reference, Python filter, C filter) of one call."""
    binding = world.host._bindings[ip]
    spec = binding.spec
    args = [slots[2 * i] & (M32 if kind in ("i32", "f32") else M64)
            for i, kind in enumerate(spec.params)][:6]
    args += [0] * (6 - len(args))
    nr = spec.number & M32
    reference = interpret(world.program, SeccompData.make(nr, AUDIT_ARCH_CALLGATE, args, ip)).ret
    constant, filter_fn = world.plan.for_gate(spec.number)
    python = constant if constant is not None else filter_fn(nr, AUDIT_ARCH_CALLGATE, ip, *args)
    c = None
    if world.native is not None and binding.native:
        c = world.native.filter(binding.native, args)
    return reference, python, c


def run_scenario(scenario: Scenario) -> int:
    """Run one scenario in both worlds; raise :class:`Divergence` at the first difference.
    Returns the number of calls compared."""
    program = policy_program(scenario, GateTable([WasiProvider(), _app_gates()]))
    worlds = [World(scenario, program, True, "c"), World(scenario, program, False, "py")]
    try:
        return _compare(scenario, *worlds)
    finally:
        for world in worlds:
            world.close()


def _compare(scenario: Scenario, a: World, b: World) -> int:
    rng = random.Random(scenario.seed * 7919 + 1)
    done = 0
    for n in range(scenario.calls):
        fds = sorted(a.state.table.entries)
        args = Args(rng, fds, a.state.table.max_fds, scenario.deadline)
        args.io_fds = [fd for fd, e in a.state.table.entries.items()
                       if e.host_fd is not None and e.sock is None and e.fed is None
                       and e.sink is None and e.filetype != T.FILETYPE_DIRECTORY]
        ip = rng.choice(a.weighted)
        spec = a.specs[ip]
        writes: list[tuple[int, bytes]] = []
        slots = make_call(rng, spec, args, writes)
        for at, data in writes:
            a.memory[at:at + len(data)] = data
            b.memory[at:at + len(data)] = data
        where = f"scenario {scenario}, call {n}: {spec.name}{tuple(slots[0::2])}"
        ref, py, c = _verdicts(a, ip, slots)
        if py != ref or (c is not None and c != ref):
            raise Divergence(f"{where}: verdicts reference {ref:#x}, python {py:#x}, C {c}")
        before_a = a.counters()
        out_a = a.call(ip, slots)
        out_b = b.call(ip, slots)
        if spec.name == "random_get" and out_a == out_b == ("ok", (0,)):
            buf, length = slots[0] & M32, slots[2] & M32
            b.memory[buf:buf + length] = a.memory[buf:buf + length]
        at = slots[4] & M32 if len(slots) > 4 else 0
        if spec.name == "clock_time_get" and out_a == out_b == ("ok", (0,)) and at + 8 <= MEM \
                and a.memory[at:at + 8] != b.memory[at:at + 8]:
            # world A read its clock first: B's reading is not earlier
            then, now = (struct.unpack_from("<Q", w.memory, at)[0] for w in (a, b))
            if not then <= now < then + 60 * 10**9:
                raise Divergence(f"scenario {scenario}, call {n}: clock_time_get gave {then} "
                                 f"in C, then {now} in Python")
            b.memory[at:at + 8] = a.memory[at:at + 8]
        checks = (
            ("outcome", out_a, out_b),
            ("counters", a.counters(), b.counters()),
            ("output used", a.host.output_used, b.host.output_used),
            ("audit", a.host.audit_sink.written, b.host.audit_sink.written),
            ("offsets", a.offsets(), b.offsets()),
        )
        for what, x, y in checks:
            if x != y:
                raise Divergence(f"{where}: {what} differ:\n  C:      {x}\n  Python: {y}"
                                 f"\n  (counters before: {before_a[ip]})")
        if a.memory != b.memory:
            first = next(i for i in range(MEM) if a.memory[i] != b.memory[i])
            raise Divergence(f"{where}: memory differs from byte {first:#x}: C "
                             f"{bytes(a.memory[first:first + 16]).hex()} Python "
                             f"{bytes(b.memory[first:first + 16]).hex()}")
        if out_a[0] == "raise" and out_a[1] in ("PluginKilled", "PluginPoisoned"):
            a.host.revive()
            b.host.revive()
        done += 1
    final_a, final_b = a.final_state(), b.final_state()
    for key in final_a:
        if final_a[key] != final_b[key]:
            raise Divergence(f"scenario {scenario}: final {key} differ:\n  C:      "
                             f"{_short(final_a[key])}\n  Python: {_short(final_b[key])}")
    return done


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 2000 else text[:2000] + "..."


def scenarios(seed: int) -> Iterator[Scenario]:
    """An endless, deterministic stream of varied scenarios (the sanitizer run uses it)."""
    rng = random.Random(seed)
    kinds = ("file", "dir", "pipe_r", "pipe_w", "null", "sock", "exotic")
    while True:
        yield Scenario(
            seed=rng.getrandbits(48), calls=rng.choice((50, 200, 400)),
            default=rng.choice((A.SECCOMP_RET_ALLOW,) * 12 + ACTIONS),
            rules=rng.choice((0, 0, 0, 2, 4, 8)), deadline=rng.random() < 0.3,
            output_cap=rng.choice((None, None, 0, 50, 5000, 100000)),
            extra_fds=tuple(rng.choice(kinds + ("file",) * 4) for _ in range(rng.randrange(1, 8))))


def probe(address: int) -> tuple[Any, ...]:
    """One clock_time_get in world A, its result written at ``address`` (the sanitizer test's
    planted-bug check: a write a correct core refuses with EFAULT)."""
    scenario = Scenario(seed=1, rules=0, extra_fds=("null",))
    world = World(scenario, ALLOW_ALL, True, "probe")
    try:
        ip = world.specs.index(next(s for s in world.specs if s.name == "clock_time_get"))
        return world.call(ip, [1, 0, 0, 0, address, 0])
    finally:
        world.close()


def main(argv: list[str]) -> int:
    if len(argv) > 2 and argv[1] == "probe":
        print("probe:", probe(int(argv[2])))
        return 0
    seed = int(argv[1]) if len(argv) > 1 else 1
    cases = int(argv[2]) if len(argv) > 2 else 2000
    total = 0
    started = time.monotonic()
    for scenario in scenarios(seed):
        total += run_scenario(scenario)
        if total >= cases:
            break
    print(f"differential: {total} cases, no divergence, {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
