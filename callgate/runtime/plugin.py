"""A loaded plugin: one wasm instance whose every import is a gate under one policy.

The Python API an application embeds::

    from callgate import Plugin, AppGates, Limits

    with Plugin("wordcount.wasm", policy="policy.toml", limits=Limits(fuel=10**8)) as p:
        print(p.call("wordcount", b"two words"))      # bytes ABI
        print(p.call_int("add", 2, 3))                # integer exports

Loading refuses any module with an import that is not a known gate (listing all
of them), compiles the policy's ``[gates]`` section for the plugin's gate table,
binds one raw wasmtime callback per import and instantiates. Calls go through
wasmtime's unchecked C API; the GIL is released while wasm runs, so independent
plugins run concurrently from several threads. One plugin serialises its own
calls (a lock), and a gate may call back into its plugin from the same thread.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _bindings as wb

from callgate.bpf.actions import SECCOMP_RET_ALLOW
from callgate.bpf.compiled import CompiledFilter, compile_program
from callgate.bpf.evaluator import Evaluator
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.gates.app import AppGates
from callgate.gates.memory import GuestMemory
from callgate.arch.gate_numbers import WASI_MODULE
from callgate.gates.spec import GateSpec
from callgate.gates.table import GateProvider, GateTable
from callgate.policy import Policy, load_policy
from callgate.policy.compiler import compile_section
from callgate.runtime import abi
from callgate.runtime import audit as audit_mod
from callgate.runtime.capi import (
    CALLBACK,
    EXTERN_MEMORY,
    EXTERN_MEMORY_OFFSET,
    NULL,
    TRAP_INTERRUPT,
    TRAP_NAMES,
    TRAP_OUT_OF_FUEL,
    TRAP_STACK_OVERFLOW,
    address,
    ffi,
    lib,
    take_message,
    trap_code,
)
from callgate.runtime.dispatch import GateBinding
from callgate.gates.errors import (
    DeadlineExceeded,
    FuelExhausted,
    GuestTrap,
    ImportRefused,
    InstanceLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PluginClosed,
    PluginError,
    PluginKilled,
    PluginLoadError,
    PluginPoisoned,
    StackOverflow,
    TableLimitExceeded,
)
from callgate.runtime.limits import Limits, SharedEngine
from callgate.runtime.specialize import specialize

PolicySource = Policy | str | os.PathLike[str] | bytes | Sequence[Insn] | None
_ids = itertools.count(1)
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
_call_unchecked = lib.wasmtime_func_call_unchecked
# A module file bigger than this is refused before reading it whole.
MAX_MODULE_BYTES = 256 * 1024 * 1024


def _valtype_name(t: wasmtime.ValType) -> str:
    return str(t)


def _signature(ft: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (tuple(_valtype_name(t) for t in ft.params),
            tuple(_valtype_name(t) for t in ft.results))


def format_signature(params: Sequence[str], results: Sequence[str]) -> str:
    return f"({', '.join(params)}) -> ({', '.join(results)})"


FILTER_MODES = ("compiled", "interpreter")


@lru_cache(maxsize=64)
def _compile_filter(policy: Policy | tuple[Insn, ...], table_key: tuple[tuple[str, int], ...]
                    ) -> Evaluator:
    """Verify + compile + constant-analyse once per (policy, gate table)."""
    from callgate.arch import AUDIT_ARCH_CALLGATE, Arch
    numbers = dict(table_key)
    if isinstance(policy, tuple):
        program = list(policy)
    else:
        if policy.gates is None:
            raise PluginLoadError(f"policy {policy.source} has no [gates] section; a plugin "
                                  "needs one to decide its gate calls")
        program = compile_section(policy.gates, Arch("callgate", AUDIT_ARCH_CALLGATE, numbers))
    return Evaluator(program, AUDIT_ARCH_CALLGATE, numbers.values())


@lru_cache(maxsize=1024)
def _gate_filter(program: tuple[Insn, ...], nr: int, arch: int) -> CompiledFilter:
    """The filter one gate calls: ``program`` specialised for its ``nr`` (see specialize)."""
    return compile_program(specialize(program, nr, arch))


def _interpreted_filter(program: tuple[Insn, ...]) -> CompiledFilter:
    """The reference interpreter behind the compiled filter's signature (``filter_mode``)."""
    def run(nr: int, arch: int, ip: int, *args: int) -> int:
        return interpret(program, SeccompData(nr, arch, ip, args)).ret
    return run


_ALLOW_ALL = (Insn(0x06, 0, 0, SECCOMP_RET_ALLOW),)  # BPF_RET|BPF_K ALLOW


@lru_cache(maxsize=32)
def _compile_module(engine: wasmtime.Engine, digest: bytes, data: bytes) -> wasmtime.Module:
    del digest  # part of the cache key only
    return wasmtime.Module(engine, data)


class Plugin:
    """A plugin instance. Close it (or use ``with``) to free its store and gate state.

    * ``module``: a path, wasm (or WAT) bytes, or a ``wasmtime.Module`` compiled
      for a callgate engine (rare; prefer bytes or a path);
    * ``policy``: a :class:`~callgate.policy.Policy`, a policy file path, policy
      text, or a raw BPF program (a sequence of :class:`~callgate.bpf.insn.Insn`)
      for the gate arch. None allows every gate of the table (the table itself
      is then the only allowlist) — pass a policy for anything untrusted;
    * ``gates``: app-defined gates (:class:`~callgate.gates.app.AppGates`);
    * ``providers``: gate providers besides ``gates``; default: WASI preview1 with
      its default configuration (no args, env or preopens; stdio inherited) —
      pass ``[WasiProvider(WasiConfig(...))]`` to configure it, ``[]`` for none;
    * ``limits``: :class:`~callgate.runtime.limits.Limits`;
    * ``broker``: decides TRAP and USER_NOTIF verdicts (see
      :mod:`callgate.runtime.broker`); ``tracer``: hook for TRACE verdicts;
    * ``audit``: an :class:`~callgate.runtime.audit.AuditSink` or a JSON-lines path;
    * ``name``: the plugin id in audit records (default: file stem + serial);
    * ``filter_mode``: ``"compiled"`` (the default: the constant-action table, else the
      filter compiled to Python) or ``"interpreter"``: every call runs the reference
      interpreter on a real ``seccomp_data`` record, with no cache and no generated
      code — the kernel's semantics step by step, for differential checks and
      teaching, ~10x slower per call.
    """

    def __init__(
        self,
        module: str | os.PathLike[str] | bytes | wasmtime.Module,
        *,
        policy: PolicySource = None,
        gates: AppGates | None = None,
        providers: Iterable[GateProvider] | None = None,
        limits: Limits | None = None,
        broker: Any = None,
        tracer: Any = None,
        audit: audit_mod.AuditSink | str | os.PathLike[str] | None = None,
        name: str | None = None,
        filter_mode: str = "compiled",
    ) -> None:
        if filter_mode not in FILTER_MODES:
            raise ValueError(f"filter_mode {filter_mode!r}: use one of {', '.join(FILTER_MODES)}")
        self.filter_mode = filter_mode
        self._closed = True  # until fully loaded, close() has little to do
        self._states: list[Any] = []
        self._owns_sink = False
        self._ticking = False
        self.limits = limits or Limits()
        self.broker = broker
        self.tracer = tracer
        self._poisoned: PluginKilled | None = None
        self._usable = False  # open and not poisoned: the one flag the hot path reads
        self._pending: BaseException | None = None
        self._lock = threading.RLock()
        self._output_used = 0
        # time.monotonic() at which the current call's deadline passes (Limits.timeout).
        self.deadline: float | None = None
        self._memory: Any = None
        self._exports: dict[str, Any] = {}
        self._raw_cache: dict[str, Any] = {}
        self._signatures: dict[str, tuple[tuple[str, ...], tuple[str, ...]] | None] = {}
        self._bindings: list[GateBinding] = []
        self._callbacks: list[Any] = []

        data, default_name = module_bytes(module)
        self.name = name or f"{default_name}#{next(_ids)}"
        if providers is None:
            providers = default_providers()
        all_providers = [*providers, *([gates] if gates is not None else [])]
        self.table = GateTable(all_providers)
        self._shared = SharedEngine.for_limits(self.limits)
        engine = self._shared.engine
        if isinstance(module, wasmtime.Module):
            self.module = module
        else:
            self.module = compile_module(data, engine, self.name)
        resolved = resolve_imports(self.module, self.table)
        self.evaluator = _compile_filter(*_filter_key(policy, self.table))
        if isinstance(audit, (str, os.PathLike)):
            self.audit_sink = audit_mod.AuditSink(audit)
            self._owns_sink = True
        else:
            self.audit_sink = audit or _default_sink()
        try:
            self._instantiate(resolved)
        except BaseException:
            self._release()
            raise

    # -- loading ---------------------------------------------------------------------------

    def _instantiate(self, resolved: list[tuple[GateSpec, GateProvider]]) -> None:
        store = wasmtime.Store(self._shared.engine)
        self._store = store
        store.set_limits(**self.limits.store_limits())
        self._ctx = ffi.cast("wasmtime_context_t *", address(store._context()))
        self._trap_out = ffi.new("wasm_trap_t **")
        self._deadline = self.limits.deadline_ticks()
        if self.limits.timeout is not None:
            self._shared.ticker.acquire()
            self._ticking = True
        self._closed = False
        self._usable = True
        self._budgeted = self.limits.fuel is not None or self.limits.timeout is not None
        lib.wasmtime_context_set_epoch_deadline(self._ctx, self._deadline)

        # State only for providers this module imports from (a WASI fd table is not free).
        states: dict[str, Any] = {}
        for _, provider in resolved:
            if provider.module not in states:
                state = provider.instance_state(self)
                states[provider.module] = state
                self._states.append(state)
        imports = []
        evaluator = self.evaluator
        functypes = [imp.type for imp in self.module.imports]
        interpreted = (_interpreted_filter(evaluator.program)
                       if self.filter_mode == "interpreter" else None)
        for ip, (spec, provider) in enumerate(resolved):
            if interpreted is not None:
                constant, filter_fn = None, interpreted
            else:
                constant = evaluator.constant.get(spec.number & M32)
                filter_fn = evaluator.function if constant is not None else \
                    _gate_filter(evaluator.program, spec.number & M32, evaluator.arch)
            binding = GateBinding(self, spec, ip, states[provider.module], filter_fn, constant)
            callback = CALLBACK(binding.callback)
            raw = ffi.new("wasmtime_func_t *")
            lib.wasmtime_func_new_unchecked(
                self._ctx, ffi.cast("wasm_functype_t *", address(functypes[ip].ptr())),
                ffi.cast("cg_callback_t", ctypes.cast(callback, ctypes.c_void_p).value),
                NULL, ffi.cast("void (*)(void *)", 0), raw)
            imports.append(wasmtime.Func._from_raw(
                wb.wasmtime_func_t.from_buffer_copy(ffi.buffer(raw))))
            self._bindings.append(binding)
            self._callbacks.append(callback)
        self._prepare_call()
        try:
            self.instance = wasmtime.Instance(store, self.module, imports)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise self._load_failure(exc) from None
        for export_name, item in self.instance.exports(store).items():
            if isinstance(item, wasmtime.Memory) and export_name == "memory":
                mem = ffi.new("wasmtime_memory_t *")
                ffi.memmove(mem, ffi.cast("char *", address(item._memory)),
                            ffi.sizeof("wasmtime_memory_t"))
                self._memory = mem
            elif isinstance(item, wasmtime.Func):
                self._exports[export_name] = item
        if "_initialize" in self._exports:
            self.call_int("_initialize")

    def _load_failure(self, exc: Exception) -> BaseException:
        pending, self._pending = self._pending, None
        if pending is not None:
            return pending
        message = str(exc).strip()
        if isinstance(exc, wasmtime.Trap):
            code = exc.trap_code
            return _trap_error(code.value if code is not None else None,
                               f"{self.name}: {_cause(message)}", message)
        lowered = message.lower()
        first = message.splitlines()[0] if message else "instantiation failed"
        if "memory" in lowered and ("limit" in lowered or "count" in lowered):
            if "memory minimum size" in lowered or "memory_size" in lowered:
                return MemoryLimitExceeded(f"{self.name}: {first} (Limits.memory="
                                           f"{self.limits.memory})")
            return InstanceLimitExceeded(f"{self.name}: {first} (Limits.memories="
                                         f"{self.limits.memories})")
        if "table" in lowered and ("limit" in lowered or "count" in lowered):
            return TableLimitExceeded(f"{self.name}: {first} (Limits.table_elements="
                                      f"{self.limits.table_elements}, tables="
                                      f"{self.limits.tables})")
        if "instance" in lowered and ("limit" in lowered or "count" in lowered):
            return InstanceLimitExceeded(f"{self.name}: {first} (Limits.instances="
                                         f"{self.limits.instances})")
        return PluginLoadError(f"{self.name}: cannot instantiate: {first}")

    # -- calling ---------------------------------------------------------------------------

    def _prepare_call(self) -> None:
        """Fresh per-call budgets: fuel and deadline (only when limited), output."""
        self._output_used = 0
        if not self._budgeted:
            return
        ctx = self._ctx
        fuel = self.limits.fuel
        if fuel is not None:
            err = lib.wasmtime_context_set_fuel(ctx, fuel)
            if err:
                message = take_message(lib.wasmtime_error_message, err)
                lib.wasmtime_error_delete(err)
                raise PluginError(f"{self.name}: cannot set fuel: {message}")
        lib.wasmtime_context_set_epoch_deadline(ctx, self._deadline)
        if self.limits.timeout is not None:
            self.deadline = time.monotonic() + self.limits.timeout

    def _check_open(self) -> None:
        if self._poisoned is not None:
            raise PluginPoisoned(self._poisoned)
        if self._closed:
            raise PluginClosed(f"plugin {self.name} is closed")

    def invoke(self, func: Any, slots: Any, count: int) -> None:
        """Call a raw ``wasmtime_func_t`` with ``count`` u64 slots; raise its failure."""
        with self._lock:
            if not self._usable:
                self._check_open()
            self._prepare_call()
            trap = self._trap_out
            err = lib.wasmtime_func_call_unchecked(self._ctx, func, slots, count, trap)
            if err or trap[0]:
                raise self._call_failure(err, trap)

    def _call_failure(self, err: Any, trap: Any) -> BaseException:
        pending, self._pending = self._pending, None
        code = None
        if trap[0]:
            raw_trap, trap[0] = trap[0], NULL
            code = trap_code(raw_trap)
            message = take_message(lib.wasm_trap_message, raw_trap)
            lib.wasm_trap_delete(raw_trap)
        else:
            message = take_message(lib.wasmtime_error_message, err)
        if err:
            lib.wasmtime_error_delete(err)
        if pending is not None:
            return pending
        return _trap_error(code, f"{self.name}: {_cause(message)}", message)

    def trap(self, exc: BaseException) -> int:
        """Stash ``exc`` (raised under a gate) and return a trap that unwinds the guest."""
        if self._pending is None:
            self._pending = exc
        text = f"callgate: {type(exc).__name__} in gate".encode()
        return int(ffi.cast("uintptr_t", lib.wasmtime_trap_new(text, len(text))))

    def poison(self, error: PluginKilled) -> None:
        self._poisoned = error
        self._usable = False

    def call_int(self, name: str, *args: int) -> int | tuple[int, ...] | None:
        """Call an export with integer params/results; one result as an int (signed, as
        wasm reads it), several as a tuple, none as None."""
        entry = self._raw_cache.get(name) or self._raw_export(name)
        func, slots, nparams, count, convert = entry
        if len(args) != nparams:
            raise TypeError(f"{name} takes {nparams} argument(s), got {len(args)}")
        lock = self._lock
        lock.acquire()  # cheaper than `with` on this path; released in `finally`
        try:
            if not self._usable:
                self._check_open()
            i = 0
            for value in args:
                slots[i] = value & M64
                i += 2
            self._output_used = 0
            if self._budgeted:
                self._prepare_call()
            trap = self._trap_out
            err = _call_unchecked(self._ctx, func, slots, count, trap)
            if err or trap[0]:
                raise self._call_failure(err, trap)
            return convert(slots)
        finally:
            lock.release()

    def _raw_export(self, name: str) -> Any:
        self._check_open()
        item = self._exports.get(name)
        if item is None:
            known = ", ".join(sorted(self._exports)) or "none"
            raise abi.AbiError(f"{self.name} exports no function {name!r} (exports: {known})")
        params, results = _signature(item.type(self._store))
        for kind in (*params, *results):
            if kind not in ("i32", "i64"):
                raise abi.AbiError(f"{name} has signature {format_signature(params, results)};"
                                   " call_int handles only i32 and i64")
        count = max(len(params), len(results), 1)
        func = ffi.new("wasmtime_func_t *")
        ffi.memmove(func, ffi.cast("char *", address(item._func)),
                    ffi.sizeof("wasmtime_func_t"))
        entry = (func, ffi.new("uint64_t[]", 2 * count), len(params), count,
                 _result_converter(results))
        self._raw_cache[name] = entry
        return entry

    def export_signature(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """``(params, results)`` of an exported function, or None if there is none."""
        self._check_open()
        if name not in self._signatures:  # exports never change; asking wasmtime is slow
            item = self._exports.get(name)
            self._signatures[name] = None if item is None else _signature(item.type(self._store))
        return self._signatures[name]

    def call(self, name: str, data: bytes | bytearray | memoryview = b"") -> bytes:
        """Call a bytes-ABI export: copy ``data`` in, return the bytes it returns."""
        return abi.call_bytes(self, name, bytes(data))

    # -- memory and output -----------------------------------------------------------------

    def memory_of(self, caller: Any) -> GuestMemory | None:
        """The calling instance's exported ``memory`` as a bounds-checked window."""
        mem = self._memory
        if mem is None:
            mem = self._memory = _caller_memory(caller)
            if mem is None:
                return None
        ctx = lib.wasmtime_caller_context(caller)
        return GuestMemory(int(ffi.cast("uintptr_t", lib.wasmtime_memory_data(ctx, mem))),
                           lib.wasmtime_memory_data_size(ctx, mem))

    def memory(self) -> GuestMemory | None:
        """The plugin's exported memory, for host code between calls (None if none)."""
        self._check_open()
        mem = self._memory
        if mem is None:
            return None
        return GuestMemory(int(ffi.cast("uintptr_t", lib.wasmtime_memory_data(self._ctx, mem))),
                           lib.wasmtime_memory_data_size(self._ctx, mem))

    def remaining_time(self) -> float | None:
        """Seconds left before the current call's deadline (None: no deadline).

        Gates that block (``poll_oneoff``, a blocking read) wait at most this long,
        then call :meth:`check_deadline`; epochs cannot interrupt Python code.
        """
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def check_deadline(self) -> None:
        """Raise :class:`DeadlineExceeded` if the current call is past its deadline."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlineExceeded(f"{self.name}: the call ran past its deadline of "
                                   f"{self.limits.timeout} s inside a gate (Limits.timeout)")

    def charge_output(self, nbytes: int) -> None:
        """Count ``nbytes`` against this call's output cap; raise once it is passed."""
        self._output_used += nbytes
        cap = self.limits.output
        if cap is not None and self._output_used > cap:
            raise OutputLimitExceeded(f"{self.name}: output of this call passed the limit of "
                                      f"{cap} bytes (Limits.output)")

    # -- introspection ---------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, dict[str, int]]:
        """Per gate imported: how many calls got each verdict (``allow``, ``errno`` …)."""
        out: dict[str, dict[str, int]] = {}
        for binding in self._bindings:
            slot = out.setdefault(binding.spec.name, dict.fromkeys(audit_mod.COUNTER_NAMES, 0))
            for key, count in zip(audit_mod.COUNTER_NAMES, binding.counts, strict=True):
                slot[key] += count
        return out

    @property
    def poisoned(self) -> bool:
        return self._poisoned is not None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Free the store, the gate callbacks and provider state (fds …); idempotent.

        Other threads' calls finish first (close takes the plugin's lock). Closing from
        inside one of the plugin's own calls (a gate, the broker) is refused: the store
        is still executing wasm, and freeing it would pull memory from under the guest.
        """
        if self._lock._is_owned():  # type: ignore[attr-defined]
            raise PluginError(f"{self.name}: close() called from inside one of its own calls "
                              "(a gate or broker); close it after the call returns")
        with self._lock:
            if self._closed and not hasattr(self, "_store"):
                return
            self._closed = True
            self._release()

    def _release(self) -> None:
        self._closed = True
        self._usable = False
        for state in self._states:
            closer = getattr(state, "close", None)
            if callable(closer):
                closer()
        self._states = []
        if self._ticking:
            self._shared.ticker.release()
            self._ticking = False
        for attr in ("instance", "_store"):
            self.__dict__.pop(attr, None)
        self._exports = {}
        self._raw_cache = {}
        self._signatures = {}
        self._memory = None
        self._callbacks = []
        if self._owns_sink:
            self.audit_sink.close()
            self._owns_sink = False

    def __enter__(self) -> Plugin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("poisoned" if self._poisoned else "open")
        return f"<Plugin {self.name} {state}>"


# -- helpers ---------------------------------------------------------------------------------

def module_bytes(module: str | os.PathLike[str] | bytes | wasmtime.Module) -> tuple[bytes, str]:
    if isinstance(module, wasmtime.Module):
        return b"", "module"
    if isinstance(module, (bytes, bytearray, memoryview)):
        return bytes(module), "plugin"
    path = Path(module)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_MODULE_BYTES + 1)
    except OSError as exc:
        raise PluginLoadError(f"cannot read plugin {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MODULE_BYTES:
        raise PluginLoadError(f"plugin {path} is larger than {MAX_MODULE_BYTES} bytes")
    return data, path.stem


def resolve_imports(module: wasmtime.Module, table: GateTable
                    ) -> list[tuple[GateSpec, GateProvider]]:
    """The gate (and its provider) each import of ``module`` resolves to, in import order.

    Every import must be a function of ``table`` with exactly the gate's signature;
    otherwise ``ImportRefused`` names every offending import at once. ``callgate learn``
    calls this too, so its static analysis sees exactly what loading a plugin sees.
    """
    problems: list[str] = []
    resolved: list[tuple[GateSpec, GateProvider]] = []
    for index, imp in enumerate(module.imports):
        where = f"import #{index} {imp.module}.{imp.name}"
        ty = imp.type
        if not isinstance(ty, wasmtime.FuncType):
            problems.append(f"{where}: a {type(ty).__name__.removesuffix('Type').lower()} "
                            "import; only functions can be gates")
            continue
        found = table.find(imp.module, imp.name or "")
        if found is None:
            problems.append(f"{where}: no such gate")
            continue
        spec, provider = found
        declared = _signature(ty)
        if declared != (spec.params, spec.results):
            problems.append(f"{where}: declared {format_signature(*declared)}, but the "
                            f"gate is {format_signature(spec.params, spec.results)}")
            continue
        resolved.append((spec, provider))
    if problems:
        raise ImportRefused(problems)
    return resolved


def compile_module(data: bytes, engine: wasmtime.Engine, name: str) -> wasmtime.Module:
    """``data`` (wasm or WAT) compiled for ``engine``, cached by content; ``name`` for errors."""
    try:
        return _compile_module(engine, hashlib.sha256(data).digest(), data)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(_invalid_module(name, data, exc)) from None


def _invalid_module(name: str, data: bytes, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
    if data[:4] != b"\0asm" and data.lstrip()[:1] != b"(":
        return (f"{name}: not a wasm module: it has no \\0asm header and is not WAT text "
                f"(starts with {data[:8]!r})")
    return f"{name}: not a valid wasm module: {first}"


def _filter_key(policy: PolicySource, table: GateTable
                ) -> tuple[Policy | tuple[Insn, ...], tuple[tuple[str, int], ...]]:
    table_key = tuple(sorted(table.arch.numbers.items()))
    if policy is None:
        return _ALLOW_ALL, table_key
    if isinstance(policy, Policy):
        return policy, table_key
    if isinstance(policy, (str, bytes, os.PathLike)):
        app_names = [spec.name for spec in table if spec.module != WASI_MODULE]
        return load_policy(policy, gate_names=app_names), table_key
    return tuple(policy), table_key


def _caller_memory(caller: Any) -> Any:
    ext = ffi.new("wasmtime_extern_t *")
    if not lib.wasmtime_caller_export_get(caller, b"memory", 6, ext):
        return None
    base = ffi.cast("char *", ext)
    if ffi.cast("uint8_t *", base)[0] != EXTERN_MEMORY:
        return None
    mem = ffi.new("wasmtime_memory_t *")
    ffi.memmove(mem, base + EXTERN_MEMORY_OFFSET, ffi.sizeof("wasmtime_memory_t"))
    return mem


def _result_converter(kinds: tuple[str, ...]) -> Any:
    """slots -> the Python result(s) of an integer export (signed, like wasmtime-py)."""
    if not kinds:
        return lambda slots: None
    if kinds == ("i64",):
        return lambda slots: slots[0] - (1 << 64) if slots[0] >> 63 else slots[0]
    if len(kinds) == 1:
        return lambda slots: _signed("i32", slots[0])
    return lambda slots: tuple(_signed(kind, slots[2 * i]) for i, kind in enumerate(kinds))


def _signed(kind: str, bits: int) -> int:
    if kind == "i32":
        bits &= M32
        return bits - (1 << 32) if bits >> 31 else bits
    return bits - (1 << 64) if bits >> 63 else bits


def _cause(message: str) -> str:
    """wasmtime's "error while executing at wasm backtrace: … Caused by: …" → the cause."""
    text = message.strip()
    if "Caused by:" not in text:
        return text.splitlines()[0] if text else "wasm trap"
    causes = [line.strip() for line in text.split("Caused by:", 1)[1].splitlines()]
    causes = [c.split(":", 1)[1].strip() if c[:1].isdigit() and ":" in c else c
              for c in causes]
    return "; ".join(c for c in causes if c)


def _trap_error(code: int | None, message: str, details: str = "") -> PluginError:
    """The typed error for a trap; ``details`` (wasmtime's full text) goes on ``.details``."""
    error: PluginError
    if code == TRAP_OUT_OF_FUEL:
        error = FuelExhausted(f"{message} (Limits.fuel)")
    elif code == TRAP_INTERRUPT:
        error = DeadlineExceeded(f"{message}: the call ran past its deadline (Limits.timeout)")
    elif code == TRAP_STACK_OVERFLOW:
        error = StackOverflow(f"{message} (Limits.stack)")
    else:
        error = GuestTrap(message, TRAP_NAMES.get(code) if code is not None else None)
    error.details = details or message
    return error


@lru_cache(maxsize=1)
def _default_sink() -> audit_mod.AuditSink:
    return audit_mod.AuditSink()


def default_providers() -> list[GateProvider]:
    """Providers a plugin needs for ordinary guests: WASI preview1, when it is installed."""
    try:
        from callgate.gates.wasi import WasiProvider  # type: ignore[attr-defined]
    except ImportError:
        return []
    return [WasiProvider()]
