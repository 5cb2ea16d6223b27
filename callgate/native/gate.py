"""The native gate core (``csrc/gate.c``, ``csrc/bpf.c``) as Python sees it: thin handles.

The core runs a plugin's gate calls in C when it can decide them exactly as the Python
runtime would (see ``gate.h``); :mod:`callgate.runtime.dispatch` decides which imports
go through it and is the only user of this module. Like the rest of this package it is
a leaf: it knows no gates, policies or wasmtime objects, only numbers and addresses.

Its twin is the Python runtime itself: the filter (``callgate.bpf``), the dispatcher
(``callgate.runtime.dispatch``), the WASI gates (``callgate.gates.wasi``) and the audit
sink's rate limit (``callgate.runtime.audit``). ``tests/native`` runs the two on the same
random policies, arguments and fd tables and requires the same results, memory,
counters and audit records.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from callgate.native import loader

# The C bodies, by the WASI function they are the twin of.
BODIES = (
    "clock_res_get", "clock_time_get", "random_get", "args_get", "args_sizes_get",
    "environ_get", "environ_sizes_get", "fd_prestat_get", "fd_prestat_dir_name",
    "fd_fdstat_get", "fd_read", "fd_write", "fd_pread", "fd_pwrite", "fd_seek", "fd_tell",
)
# How an ERRNO verdict is answered (gate.h CG_DENY_*).
DENY_PYTHON, DENY_FIRST, DENY_NEGATIVE, DENY_NOTHING = range(4)
# Why C trapped (gate.h CG_PENDING_*).
PENDING_NONE, PENDING_KILL_PROCESS, PENDING_KILL_THREAD, PENDING_DEADLINE, PENDING_OUTPUT, \
    PENDING_FLUSH = range(6)
# Why an audit scan stopped (gate.h CG_SCAN_*).
SCAN_END, SCAN_SUMMARY, SCAN_ADMITTED, SCAN_FULL = range(4)
MAX_PARAMS = 64
AUDIT_MAX_ARGS = 16
NCOUNTERS = 8
U64 = (1 << 64) - 1
_INSN = struct.Struct("<HBBI")


def core() -> Any:
    """The compiled module, or None (pure Python: not built, or CALLGATE_PURE_PYTHON)."""
    module = loader.core()
    if module is None or not hasattr(module.lib, "cg_gate_entry"):
        return None
    return module


def available() -> bool:
    return core() is not None


def body_id(name: str) -> int:
    """The C body of WASI function ``name`` (0: none, Python runs it)."""
    return BODIES.index(name) + 1 if name in BODIES else 0


def pack_program(program: Iterable[tuple[int, int, int, int]]) -> bytes:
    """``(code, jt, jf, k)`` instructions as packed ``struct sock_filter``."""
    return b"".join(_INSN.pack(*insn) for insn in program)


def set_errno_map(mapping: dict[int, int], default: int) -> None:
    """Host errno -> WASI errno, for every body (wasi_errno.from_host)."""
    mod = core()
    if mod is None:
        return
    size = min(256, max(mapping, default=0) + 1)
    table = [default] * size
    for host, wasi in mapping.items():
        if 0 < host < size:
            table[host] = wasi
    mod.lib.cg_gate_set_errno_map(mod.ffi.new("uint16_t[]", table), size, default)


@dataclass(frozen=True, slots=True)
class HostApi:
    """The addresses C calls: wasmtime's functions and the two Python trampolines."""

    trap_new: int
    memory_data: int
    memory_size: int
    func_call: int
    fallback: int
    flush: int


@dataclass(frozen=True, slots=True)
class FdInfo:
    """One guest fd as C mirrors it (gate.h ``cg_fd_info``)."""

    filetype: int
    flags: int
    allowed: int            # FdEntry.allowed: the rights its calls are checked against
    rights_base: int        # what fd_fdstat_get reports
    rights_inheriting: int
    host_fd: int            # -1: none
    plain: bool             # a host fd and nothing else
    name: bytes | None      # a preopen's guest name, encoded
    name_python: bool = False  # a preopen whose name only Python can answer for


@dataclass(slots=True)
class ScanState:
    """The audit sink's rate-limit state around one scan (gate.h ``cg_audit_scan``)."""

    pos: int
    rate: float
    burst: float
    interval: float
    has_bucket: bool
    tokens: float
    last: float
    has_held: bool
    next_summary: float
    held_since: float = 0.0
    moment: float = 0.0
    next: int = 0
    stop: int = SCAN_END
    # (binding, ret) -> count, in order of first appearance
    groups: tuple[tuple[int, int, int], ...] = ()


class NativePlugin:
    """One plugin's C state: counters, the audit buffer, the mirrors; and its bindings.

    Python holds one reference to the C plugin, each binding (owned by wasmtime, freed by
    its finalizer when the store goes) another, so C state outlives whichever goes last.
    """

    __slots__ = ("_ffi", "_lib", "_record", "_scan", "nbindings", "plugin_id", "ptr", "shared",
                 "wall_offset")

    def __init__(self, api: HostApi, plugin_id: int, nbindings: int, ctx: int) -> None:
        mod = core()
        if mod is None:
            raise RuntimeError("the native gate core is not available")
        ffi, lib = mod.ffi, mod.lib
        self._ffi, self._lib = ffi, lib
        host = ffi.new("cg_host_api *")
        host.trap_new = ffi.cast("cg_trap_new_fn", api.trap_new)
        host.memory_data = ffi.cast("cg_memory_data_fn", api.memory_data)
        host.memory_size = ffi.cast("cg_memory_size_fn", api.memory_size)
        host.func_call = ffi.cast("cg_func_call_fn", api.func_call)
        host.fallback = ffi.cast("cg_callback_fn", api.fallback)
        host.flush = ffi.cast("cg_flush_fn", api.flush)
        ptr = lib.cg_plugin_new(host, plugin_id, nbindings, ffi.cast("void *", ctx))
        if ptr == ffi.NULL:
            raise MemoryError("cannot create the native gate state")
        self.ptr = ffi.gc(ptr, lib.cg_plugin_release)
        self.shared = lib.cg_plugin_shared(self.ptr)
        self.nbindings = nbindings
        self.plugin_id = plugin_id
        self.wall_offset: float | None = None  # wall - monotonic, for records' times
        self._record = ffi.new("cg_audit_record *")
        self._scan = ffi.new("cg_audit_scan *")

    # -- bindings ------------------------------------------------------------------------

    def bind(self, *, index: int, nr: int, arch: int, params: Sequence[str], nresults: int,
             constant: int | None, program: bytes, body: int, deny: int,
             binding_id: int) -> int:
        """A C binding (its address, for wasmtime's env), or 0 if C cannot serve it."""
        ffi = self._ffi
        if len(params) > MAX_PARAMS:
            return 0
        spec = ffi.new("cg_binding_spec *")
        spec.index = index
        spec.nr = nr - (1 << 32) if nr >= 1 << 31 else nr
        spec.arch = arch
        spec.nparams = len(params)
        spec.nresults = nresults
        spec.narrow = sum(1 << i for i, kind in enumerate(params) if kind in ("i32", "f32"))
        spec.has_constant = constant is not None
        spec.constant = constant or 0
        spec.body = body
        spec.deny = deny
        spec.binding_id = binding_id
        insns = len(program) // _INSN.size
        prog = ffi.from_buffer("cg_insn[]", program) if program else ffi.NULL
        binding = self._lib.cg_binding_new(self.ptr, spec, prog, insns)
        return 0 if binding == ffi.NULL else int(ffi.cast("uintptr_t", binding))

    def filter(self, binding: int, args: Sequence[int]) -> int:
        """The binding's filter result for six args (tests)."""
        ffi = self._ffi
        return int(self._lib.cg_binding_filter(ffi.cast("cg_binding *", binding),
                                               ffi.new("uint64_t[6]", list(args)[:6])))

    @staticmethod
    def entry_address() -> int:
        mod = core()
        return int(mod.ffi.cast("uintptr_t", mod.ffi.addressof(mod.lib, "cg_gate_entry")))

    @staticmethod
    def finalizer_address() -> int:
        mod = core()
        return int(mod.ffi.cast("uintptr_t", mod.ffi.addressof(mod.lib, "cg_binding_free")))

    @staticmethod
    def free_binding(binding: int) -> None:
        """Free a binding wasmtime never took (its registration failed)."""
        mod = core()
        mod.lib.cg_binding_free(mod.ffi.cast("void *", binding))

    def call_function(self) -> Any:
        """``cg_call(plugin, depth, func, slots, nslots, err_out, trap_out)``."""
        return self._lib.cg_call

    # -- state -----------------------------------------------------------------------------

    def counts(self) -> list[int]:
        """``nbindings`` rows of 8 counters, flat."""
        return list(self._ffi.unpack(self._lib.cg_plugin_counts(self.ptr),
                                     self.nbindings * NCOUNTERS))

    def set_memory(self, blob: bytes | None) -> None:
        if blob is None:
            self._lib.cg_plugin_set_memory(self.ptr, self._ffi.NULL, 0)
        elif self._lib.cg_plugin_set_memory(self.ptr, blob, len(blob)) != 0:
            raise ValueError(f"a wasmtime_memory_t of {len(blob)} bytes does not fit")

    def set_output_cap(self, cap: int | None) -> None:
        self.shared.output_capped = cap is not None
        self.shared.output_cap = min(cap or 0, U64)

    def set_deadline(self, deadline: float | None) -> None:
        self.shared.has_deadline = deadline is not None
        self.shared.deadline = math.inf if deadline is None else deadline

    def take_pending(self) -> tuple[int, int, int]:
        """``(kind, binding index, filter result)`` of C's last trap; clears it."""
        shared = self.shared
        kind = int(shared.pending)
        if kind == PENDING_NONE:
            return PENDING_NONE, 0, 0
        shared.pending = PENDING_NONE
        return kind, int(shared.pending_binding), int(shared.pending_ret)

    # -- the WASI mirror -------------------------------------------------------------------

    def attach_wasi(self, capacity: int) -> None:
        err = self._lib.cg_wasi_attach(self.ptr, capacity)
        if err:
            raise OSError(err, "cannot mirror the WASI fd table")

    def set_strings(self, which: int, items: Sequence[bytes]) -> None:
        ffi = self._ffi
        blob = b"".join(items)
        lens = ffi.new("uint64_t[]", [len(item) for item in items] or [0])
        err = self._lib.cg_wasi_set_strings(self.ptr, which, blob, len(blob), lens, len(items))
        if err:
            raise OSError(err, "cannot mirror the WASI strings")

    def set_fd(self, fd: int, info: FdInfo) -> None:
        ffi = self._ffi
        c = ffi.new("cg_fd_info *")
        exotic = not (0 <= info.filetype <= 0xFF and 0 <= info.flags <= 0xFFFF
                      and 0 <= info.allowed <= U64 and 0 <= info.rights_base <= U64
                      and 0 <= info.rights_inheriting <= U64
                      and -1 <= info.host_fd < 1 << 31
                      and (info.name is None or len(info.name) < 1 << 31))
        if not exotic:
            c.filetype = info.filetype
            c.flags = info.flags
            c.allowed = info.allowed
            c.rights_base = info.rights_base
            c.rights_inheriting = info.rights_inheriting
            c.host_fd = info.host_fd
            c.plain = info.plain
        c.exotic = exotic
        name = info.name if info.name is not None and not exotic else b""
        c.name_state = 0 if info.name is None and not info.name_python else \
            (2 if info.name_python or exotic else 1)
        if fd < 0 or fd > 0xFFFFFFFF:
            self.disable_wasi()
            return
        self._lib.cg_wasi_set_fd(self.ptr, fd, c, name, len(name))

    def clear_fd(self, fd: int) -> None:
        if 0 <= fd <= 0xFFFFFFFF:
            self._lib.cg_wasi_clear_fd(self.ptr, fd)

    def disable_wasi(self) -> None:
        self._lib.cg_wasi_disable(self.ptr)

    # -- the audit buffer ------------------------------------------------------------------

    def audit_pending(self) -> int:
        return int(self.shared.audit_records)

    def audit_end(self) -> int:
        return int(self._lib.cg_audit_end(self.ptr))

    def audit_clear(self) -> None:
        self._lib.cg_audit_clear(self.ptr)

    def audit_push(self, t_ns: int, binding: int, ret: int, args: Sequence[int]) -> bool:
        """Buffer a record as a denied call does (tests); False when full."""
        arr = self._ffi.new("uint64_t[]", list(args) or [0])
        return bool(self._lib.cg_audit_push(self.ptr, t_ns, binding, ret, arr, len(args)) == 0)

    def audit_read(self, pos: int) -> tuple[int, int, int, int, tuple[int, ...]] | None:
        """``(next pos, t_ns, binding, ret, args)`` of the record at ``pos``, or None."""
        rec = self._record
        nxt = int(self._lib.cg_audit_read(self.ptr, pos, rec))
        if nxt == 0:
            return None
        return nxt, int(rec.t_ns), int(rec.binding), int(rec.ret), \
            tuple(rec.args[0:rec.nargs])

    def audit_scan(self, state: ScanState) -> None:
        """Run the rate limit over buffered records from ``state.pos``; updates ``state``."""
        s = self._scan
        s.pos = state.pos
        s.rate = state.rate
        s.burst = state.burst
        s.interval = state.interval
        s.has_bucket = state.has_bucket
        s.tokens = state.tokens
        s.last = state.last
        s.has_held = state.has_held
        s.next_summary = state.next_summary
        self._lib.cg_audit_scan_run(self.ptr, s)
        state.pos = int(s.pos)
        state.next = int(s.next)
        state.has_bucket = bool(s.has_bucket)
        state.tokens = float(s.tokens)
        state.last = float(s.last)
        state.has_held = bool(s.has_held)
        state.next_summary = float(s.next_summary)
        state.held_since = float(s.held_since)
        state.moment = float(s.moment)
        state.stop = int(s.stop)
        state.groups = tuple((int(s.group_binding[i]), int(s.group_ret[i]),
                              int(s.group_count[i])) for i in range(s.ngroups))


def test_memory_api() -> tuple[int, int, int]:
    """Addresses of the harness's fake memory and trap: (memory_data, memory_size, trap_new)."""
    mod = core()
    ffi, lib = mod.ffi, mod.lib

    def addr(name: str) -> int:
        return int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))

    return addr("cg_test_memory_data"), addr("cg_test_memory_size"), addr("cg_test_trap_new")


def scan(entries: Sequence[tuple[float, int, int]], state: ScanState,
         kill_process: int = 0x80000000) -> None:
    """The Python twin of ``cg_audit_scan_run``, over ``(moment, binding, ret)`` entries
    (positions are list indices): the same stops, bucket, held groups and summary time."""
    groups: dict[tuple[int, int], int] = {}
    pos = state.pos
    while pos < len(entries):
        moment, binding, ret = entries[pos]
        state.pos, state.next, state.moment = pos, pos + 1, moment
        if moment >= state.next_summary:
            state.stop = SCAN_SUMMARY
            break
        key = (binding, ret)
        if key not in groups and len(groups) == 32:
            state.stop = SCAN_FULL
            break
        admitted = True
        if ret & 0xFFFF0000 != kill_process:
            if not state.has_bucket:
                state.has_bucket, state.tokens, state.last = True, state.burst, moment
            else:
                state.tokens = min(state.burst, state.tokens + (moment - state.last) * state.rate)
                state.last = moment
            if state.tokens >= 1.0:
                state.tokens -= 1.0
            else:
                admitted = False
        if admitted:
            state.stop = SCAN_ADMITTED
            break
        if not state.has_held:
            state.has_held, state.held_since = True, moment
            state.next_summary = min(state.next_summary, moment + state.interval)
        groups[key] = groups.get(key, 0) + 1
        pos += 1
    else:
        state.pos = state.next = pos
        state.stop = SCAN_END
    state.groups = tuple((b, r, n) for (b, r), n in groups.items())
