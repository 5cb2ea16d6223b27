"""A loaded plugin: one wasm instance whose every import is a gate under one policy.

The Python API an application embeds::

    from callgate import Plugin, AppGates, Limits

    with Plugin("wordcount.wasm", policy="policy.toml", limits=Limits(fuel=10**8)) as p:
        print(p.call("wordcount", b"two words"))      # bytes ABI
        print(p.call_int("add", 2, 3))                # integer exports

Loading (:mod:`~callgate.runtime.loading`) refuses any module with an import that
is not a known gate; the filter plan (:mod:`~callgate.runtime.filter_plan`) says
what each import evaluates; dispatch (:mod:`~callgate.runtime.dispatch`) builds
one raw callback per import; this module owns the lifecycle, the lock and the
budgets. Calls go through wasmtime's unchecked C API
(:mod:`~callgate.runtime.backend`); the GIL is released while wasm runs, so
independent plugins run concurrently from several threads. One plugin serialises
its own calls (a lock), and a gate may call back into its plugin from the same
thread: such a nested call spends the budgets of the outermost call.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import wasmtime

from callgate.bpf.actions import format_action
from callgate.gates.app import AppGates
from callgate.gates.errors import (
    AbiError,
    DeadlineExceeded,
    FuelExhausted,
    GateViolation,
    GuestTrap,
    InstanceLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PluginCancelled,
    PluginClosed,
    PluginError,
    PluginKilled,
    PluginLoadError,
    PluginPoisoned,
    StackOverflow,
    TableLimitExceeded,
)
from callgate.gates.memory import GuestMemory, LiveMemory
from callgate.gates.spec import GateSpec
from callgate.gates.table import GateProvider, GateTable
from callgate.native import gate as native_gate
from callgate.runtime import abi, audit as audit_mod, backend, dispatch
from callgate.runtime.backend import (
    CALLBACK,
    TRAP_INTERRUPT,
    TRAP_NAMES,
    TRAP_OUT_OF_FUEL,
    TRAP_STACK_OVERFLOW,
    LoadFailure,
    Raw,
)
from callgate.runtime.broker import Broker, Tracer
from callgate.runtime.compile_cache import CompileCache, default_cache
from callgate.runtime.dispatch import GateBinding, NativeAuditBatch
from callgate.runtime.filter_plan import FilterPlan, PolicySource, plan_filter
from callgate.runtime.limits import Limits, SharedEngine
from callgate.runtime.loading import (
    ModuleSource,
    Signature,
    as_binary,
    compile_module,
    default_providers,
    format_signature,
    header_of,
    header_of_module,
    module_bytes,
    resolve_imports,
    signature,
)

_ids = itertools.count(1)
_T = TypeVar("_T")
#: Seconds a gate of a cancellable plugin waits at most before it checks for a cancel.
CANCEL_POLL = 0.02
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
_call_unchecked = backend.call_unchecked
_memory_size = backend.memory_size
_native_core = native_gate.core() if dispatch.NATIVE else None
# cg_call: an export called through the native core (outermost: output reset, audit flushed).
_native_call = _native_core.lib.cg_call if _native_core is not None else None
IntResult = int | tuple[int, ...] | None
# A cached integer export: raw func, slot buffer, param count, slot count, converter.
_RawExport = tuple[Raw, Raw, int, int, Callable[[Raw], IntResult]]


class Plugin:
    """A plugin instance. Close it (or use ``with``) to free its store and gate state.

    * ``module``: a path, wasm (or WAT) bytes, or a ``wasmtime.Module`` compiled
      for a callgate engine (rare; prefer bytes or a path);
    * ``policy``: a :class:`~callgate.policy.Policy`, a policy file path, policy
      text, or a raw BPF program (a list of :class:`~callgate.bpf.insn.Insn`) for
      the gate arch. None allows every gate of the table (the table itself is then
      the only allowlist) — pass a policy for anything untrusted. A policy that
      cannot be used raises :class:`~callgate.gates.errors.PolicyRefused`;
    * ``gates``: app-defined gates (:class:`~callgate.gates.app.AppGates`);
    * ``providers``: gate providers besides ``gates``; default: WASI preview1 with
      its default configuration (no args, env or preopens; stdio inherited) —
      pass ``[WasiProvider(WasiConfig(...))]`` to configure it, ``[]`` for none;
    * ``limits``: :class:`~callgate.runtime.limits.Limits`;
    * ``broker``: decides TRAP and USER_NOTIF verdicts (a
      :class:`~callgate.runtime.broker.Broker`); ``tracer``: decides TRACE verdicts
      (a :class:`~callgate.runtime.broker.Tracer`);
    * ``audit``: an :class:`~callgate.runtime.audit.AuditSink` or a JSON-lines path;
    * ``name``: the plugin id in audit records (default: file stem + serial);
    * ``filter_mode``: ``"compiled"`` (the default: the constant-action table, else the
      filter compiled to Python) or ``"interpreter"``: every call runs the reference
      interpreter on a real ``seccomp_data`` record, with no cache and no generated
      code — the kernel's semantics step by step, for differential checks and
      teaching, ~10x slower per call;
    * ``compile_cache``: True (the default) keeps compiled modules on disk
      (:mod:`~callgate.runtime.compile_cache`; ``CALLGATE_CACHE_DIR`` moves it,
      ``CALLGATE_CACHE=off`` turns it off), False compiles every time, or a
      :class:`~callgate.runtime.compile_cache.CompileCache` of your own;
    * ``cancellable``: True lets :meth:`cancel` (from any thread) end a running call. It
      turns on wasmtime's epoch checks, as a ``Limits.timeout`` does (they cost 20-37% on
      compute-bound guests, so they are off unless asked for); every 5 ms the running guest
      asks whether it was cancelled.

    Calls: :meth:`call` (bytes ABI), :meth:`call_int` (integers), their ``async``
    twins :meth:`call_async` and :meth:`call_int_async`, and :meth:`cancel`.
    """

    def __init__(
        self,
        module: ModuleSource,
        *,
        policy: PolicySource = None,
        gates: AppGates | None = None,
        providers: Iterable[GateProvider] | None = None,
        limits: Limits | None = None,
        broker: Broker | None = None,
        tracer: Tracer | None = None,
        audit: audit_mod.AuditSink | str | os.PathLike[str] | None = None,
        name: str | None = None,
        filter_mode: str = "compiled",
        compile_cache: CompileCache | bool = True,
        cancellable: bool = False,
    ) -> None:
        self._closed = True  # until fully loaded, close() has little to do
        self._states: list[object] = []
        self._owns_sink = False
        self._ticking = False
        self._cancellable = cancellable
        self._cancel_requested = False  # set by cancel(), cleared by the next outermost call
        self.limits = limits or Limits()
        self.broker = broker
        self.tracer = tracer
        self._poisoned: PluginKilled | None = None
        self._usable = False  # open and not poisoned: the one flag the hot path reads
        # [alive]: read by every gate callback, so a kill stops gates in every frame.
        self._alive = [False]
        self._pending: BaseException | None = None
        self._lock = threading.RLock()
        self._depth = 0  # calls into the guest on the stack; budgets belong to depth 0
        self._output_used = 0
        # time.monotonic() at which the current call's deadline passes (Limits.timeout).
        self.deadline: float | None = None
        self._memory: Raw | None = None
        self._window: GuestMemory | None = None  # the last window _memory_of built
        self._exports: dict[str, wasmtime.Func] = {}
        self._raw_cache: dict[str, _RawExport] = {}
        self._signatures: dict[str, Signature | None] = {}
        self._bindings: list[GateBinding] = []
        self._callbacks: list[object] = []
        # The native gate core's state for this plugin (None: every gate is Python's).
        self._native: native_gate.NativePlugin | None = None
        self._err_out: Raw | None = None

        data, default_name = module_bytes(module)
        self.name = name or f"{default_name}#{next(_ids)}"
        if providers is None:
            providers = default_providers()
        all_providers = [*providers, *([gates] if gates is not None else [])]
        self.table = GateTable(all_providers)
        self._shared = SharedEngine.for_limits(self.limits, cancellable)
        if isinstance(module, wasmtime.Module):
            self.module = module
            resolved = resolve_imports(header_of_module(module), self.table)
        else:
            data = as_binary(data, self.name)
            header = header_of(data)
            if header is not None:  # refuse before compiling: that can take minutes
                resolved = resolve_imports(header, self.table)
            self.module = compile_module(data, self._shared.engine, self.name,
                                         engine_tag=self._shared.key.tag,
                                         disk=_disk_cache(compile_cache))
            if header is None:
                resolved = resolve_imports(header_of_module(self.module), self.table)
        self.plan: FilterPlan = plan_filter(policy, self.table, filter_mode)
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

    @property
    def filter_mode(self) -> str:
        """How gate calls are judged: ``"compiled"`` or ``"interpreter"`` (see above)."""
        return self.plan.mode

    # -- loading ---------------------------------------------------------------------------

    def _instantiate(self, resolved: list[tuple[GateSpec, GateProvider]]) -> None:
        store = wasmtime.Store(self._shared.engine)
        self._store = store
        store.set_limits(**self.limits.store_limits())
        self._ctx = backend.store_context(store)
        self._trap_out = backend.ffi.new("wasm_trap_t **")
        self._deadline_ticks = self.limits.deadline_ticks()
        if self._cancellable:  # every tick asks _on_epoch: cancelled? past the deadline?
            self._deadline_ticks = 1
            self._epoch_hook = backend.epoch_callback(store, self._on_epoch)
        if self.limits.timeout is not None or self._cancellable:
            self._shared.ticker.acquire()
            self._ticking = True
        self._closed = False
        self._usable = True
        self._alive[0] = True
        self._budgeted = (self.limits.fuel is not None or self.limits.timeout is not None
                          or self._cancellable)
        backend.set_epoch_deadline(self._ctx, self._deadline_ticks)

        # State only for providers this module imports from (a WASI fd table is not free).
        states: dict[str, object] = {}
        for _, provider in resolved:
            if provider.module not in states:
                state = provider.instance_state(self)
                states[provider.module] = state
                self._states.append(state)
        imports: list[wasmtime.Func] = []
        functypes = [imp.type for imp in self.module.imports]
        native = self._native = dispatch.native_plugin(self, len(resolved), states)
        if native is not None:
            self._err_out = backend.new_error_out()
        for ip, (spec, provider) in enumerate(resolved):
            constant, filter_fn = self.plan.for_gate(spec.number)
            binding = GateBinding(self, spec, ip, states[provider.module], filter_fn, constant)
            functype = functypes[ip]
            assert isinstance(functype, wasmtime.FuncType)  # resolve_imports checked it
            env = 0 if native is None else \
                dispatch.bind_native(binding, native, self.plan.program, constant)
            if env:  # the C callback; wasmtime frees the binding with the store
                imports.append(backend.host_func_at(self._ctx, functype, dispatch.ENTRY, env,
                                                    dispatch.FINALIZER))
            else:
                callback = CALLBACK(binding.callback)
                imports.append(backend.host_func(self._ctx, functype, callback))
                self._callbacks.append(callback)
            self._bindings.append(binding)
        with self._scope():  # a start function runs under the limits, like any call
            try:
                self.instance = wasmtime.Instance(store, self.module, imports)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                raise self._load_failure(exc) from None
        for export_name, item in self.instance.exports(store).items():
            if isinstance(item, wasmtime.Memory) and export_name == "memory":
                self._set_memory(backend.raw_memory(item))
            elif isinstance(item, wasmtime.Func):
                self._exports[export_name] = item
        if "_initialize" in self._exports:
            self.call_int("_initialize")

    def _load_failure(self, exc: Exception) -> BaseException:
        pending, self._pending = self._pending, None
        native_error = self._native_pending()
        if native_error is not None:
            return native_error
        if pending is not None:
            return pending
        message = str(exc).strip()
        if isinstance(exc, wasmtime.Trap):
            return _trap_error(backend.trap_code_of(exc),
                               f"{self.name}: {backend.trap_cause(message)}", message)
        first = message.splitlines()[0] if message else "instantiation failed"
        kind = LoadFailure.kind(message)
        limits = self.limits
        if kind == LoadFailure.MEMORY:
            return MemoryLimitExceeded(f"{self.name}: {first} (Limits.memory={limits.memory})")
        if kind == LoadFailure.MEMORIES:
            return InstanceLimitExceeded(f"{self.name}: {first} (Limits.memories="
                                         f"{limits.memories})")
        if kind == LoadFailure.TABLE:
            return TableLimitExceeded(f"{self.name}: {first} (Limits.table_elements="
                                      f"{limits.table_elements}, tables={limits.tables})")
        if kind == LoadFailure.INSTANCES:
            return InstanceLimitExceeded(f"{self.name}: {first} (Limits.instances="
                                         f"{limits.instances})")
        return PluginLoadError(f"{self.name}: cannot instantiate: {first}")

    # -- budgets: they belong to the outermost call ----------------------------------------

    def _refill(self) -> None:
        """Fresh fuel and deadline for an outermost call (only when limited)."""
        self._cancel_requested = False  # a cancel() meant the call before this one
        ctx = self._ctx
        fuel = self.limits.fuel
        if fuel is not None:
            problem = backend.set_fuel(ctx, fuel)
            if problem is not None:
                raise PluginError(f"{self.name}: cannot set fuel: {problem}")
        backend.set_epoch_deadline(ctx, self._deadline_ticks)
        if self.limits.timeout is not None:
            self.deadline = time.monotonic() + self.limits.timeout
            if self._native is not None:
                self._native.set_deadline(self.deadline)

    @contextmanager
    def _scope(self) -> Iterator[None]:
        """One call into the guest, with the lock held: the outermost one refills the
        budgets, nested ones (a gate calling back in) spend what is left of them, and
        the outermost one ends with :class:`PluginKilled` if anything killed the plugin.
        """
        with self._lock:
            depth = self._depth
            if depth == 0:
                self._reset_output()
                if self._budgeted:
                    self._refill()
            self._depth = depth + 1
            try:
                yield
            finally:
                self._depth = depth
                if depth == 0 and self._native is not None and self._native.audit_pending():
                    self._flush_native_audit()
            if depth == 0 and self._poisoned is not None:
                raise self._poisoned

    # -- calling ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._poisoned is not None:
            raise PluginPoisoned(self._poisoned)
        if self._closed:
            raise PluginClosed(f"plugin {self.name} is closed")

    def _call_failure(self, err: Raw, trap: Raw) -> BaseException:
        pending, self._pending = self._pending, None
        native_error = self._native_pending()  # a KILL_PROCESS there poisons the plugin
        code, message = backend.take_failure(err, trap)
        if self._depth == 0 and self._poisoned is not None:
            return self._poisoned  # killed in a nested call: the outermost call says so
        if native_error is not None:
            return native_error
        if pending is not None:
            return pending
        return _trap_error(code, f"{self.name}: {backend.trap_cause(message)}", message)

    def _native_failure(self, status: int) -> BaseException:
        """What a call through the native core that did not simply return ends with."""
        if status == 1:
            err_out = self._err_out
            assert err_out is not None
            err, err_out[0] = err_out[0], backend.NULL
            return self._call_failure(err, self._trap_out)
        pending, self._pending = self._pending, None  # 2: the final audit flush raised
        return pending or PluginError(f"{self.name}: the audit flush failed")

    def _native_pending(self) -> BaseException | None:
        """The error a trap of the native core stands for (and clear it), or None."""
        native = self._native
        if native is None:
            return None
        kind, index, ret = native.take_pending()
        if kind in (native_gate.PENDING_NONE, native_gate.PENDING_FLUSH):
            return None  # FLUSH: the exception the flush raised is self._pending
        if kind == native_gate.PENDING_DEADLINE:
            return self._deadline_error()
        if kind == native_gate.PENDING_OUTPUT:
            return self._output_error()
        spec = self._bindings[index].spec
        if kind == native_gate.PENDING_KILL_THREAD:
            return GateViolation(spec.name, spec.number, "KILL_THREAD", self.name)
        error = PluginKilled(spec.name, spec.number, format_action(ret), self.name)
        self._poison(error)
        return error

    def _trap(self, exc: BaseException) -> int:
        """Stash ``exc`` (raised under a gate) and return a trap that unwinds the guest."""
        if self._pending is None:
            self._pending = exc
        return backend.new_trap(f"callgate: {type(exc).__name__} in gate".encode())

    def _poison(self, error: PluginKilled) -> None:
        """A KILL_PROCESS verdict: no gate of this plugin runs again, in any frame."""
        self._poisoned = error
        self._usable = False
        self._alive[0] = False
        if self._native is not None:
            self._native.shared.alive = 0

    def call_int(self, name: str, *args: int) -> int | tuple[int, ...] | None:
        """Call an export with integer params/results; one result as an int (signed, as
        wasm reads it), several as a tuple, none as None.

        Raises (all in :mod:`callgate.gates.errors` unless said otherwise):

        * ``AbiError``: no such export, or one with a non-integer param or result;
        * ``TypeError``: the wrong number of arguments;
        * ``PluginClosed``: the plugin was closed; ``PluginPoisoned``: a KILL_PROCESS
          verdict ended an earlier call, and the plugin refuses every call since;
        * what ends this call: ``FuelExhausted`` (``Limits.fuel``), ``DeadlineExceeded``
          (``Limits.timeout``), ``StackOverflow`` (``Limits.stack``),
          ``OutputLimitExceeded`` (``Limits.output``, bytes the gates wrote),
          ``GuestTrap`` (unreachable, an out-of-bounds access …), ``GateViolation``
          (a KILL_THREAD verdict), ``PluginKilled`` (KILL_PROCESS: the plugin is
          poisoned), ``GateDenied`` (ERRNO on a gate with no result to carry it),
          ``PluginCancelled`` (:meth:`cancel`), and
          :class:`~callgate.gates.spec.GuestExit` when the guest calls ``proc_exit``
          (``.code``). Each is a ``PluginError`` but ``GuestExit``.

        An exception raised by a gate, broker or tracer comes back as itself.
        """
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
            depth = self._depth
            native = self._native
            if depth == 0:
                if native is None:
                    self._output_used = 0  # the native call resets it in C
                if self._budgeted:
                    self._refill()
            self._depth = depth + 1
            trap = self._trap_out
            if native is None:
                try:
                    err = _call_unchecked(self._ctx, func, slots, count, trap)
                finally:
                    self._depth = depth
                if err or trap[0]:
                    raise self._call_failure(err, trap)
            else:
                try:
                    status = _native_call(native.ptr, depth, func, slots,  # type: ignore[misc]
                                          count, self._err_out, trap)
                finally:
                    self._depth = depth
                if status:
                    raise self._native_failure(status)
            if depth == 0 and self._poisoned is not None:
                raise self._poisoned
            return convert(slots)
        finally:
            lock.release()

    def _raw_export(self, name: str) -> _RawExport:
        self._check_open()
        item = self._exports.get(name)
        if item is None:
            known = ", ".join(sorted(self._exports)) or "none"
            raise AbiError(f"{self.name} exports no function {name!r} (exports: {known})")
        params, results = signature(item.type(self._store))
        for kind in (*params, *results):
            if kind not in ("i32", "i64"):
                raise AbiError(f"{name} has signature {format_signature(params, results)};"
                                   " call_int handles only i32 and i64")
        count = max(len(params), len(results), 1)
        entry: _RawExport = (backend.raw_func(item), backend.ffi.new("uint64_t[]", 2 * count),
                             len(params), count, _result_converter(results))
        self._raw_cache[name] = entry
        return entry

    def export_signature(self, name: str) -> Signature | None:
        """``(params, results)`` of an exported function, or None if there is none."""
        self._check_open()
        if name not in self._signatures:  # exports never change; asking wasmtime is slow
            item = self._exports.get(name)
            self._signatures[name] = None if item is None else signature(item.type(self._store))
        return self._signatures[name]

    def call(self, name: str, data: bytes | bytearray | memoryview = b"") -> bytes:
        """Call a bytes-ABI export: copy ``data`` in, return the bytes it returns.

        Raises what :meth:`call_int` raises, and for the bytes ABI itself:

        * ``AbiError``: no exported ``memory``, ``cg_alloc`` or ``name`` with the ABI's
          signature (``GuestAllocError``, an ``AbiError``: ``cg_alloc`` returned 0);
        * ``OutputLimitExceeded``: a result over ``Limits.output`` (judged from its
          length, before anything is copied);
        * :class:`~callgate.gates.memory.GuestMemoryError`: a result pointer or length
          outside the guest's memory.
        """
        with self._scope():
            return abi.call_bytes(self, name, bytes(data))

    # -- async and cancel ------------------------------------------------------------------

    def cancel(self) -> bool:
        """End the running call from any thread (a plugin made with ``cancellable=True``).

        The call raises :class:`~callgate.gates.errors.PluginCancelled` within a few
        milliseconds: at the guest's next epoch check (every 5 ms), or when a gate blocked
        in a wait looks again (every :data:`CANCEL_POLL` seconds). The plugin stays usable.
        Returns whether a call was running; with none, nothing happens (the next call is
        not cancelled). Raises :class:`~callgate.gates.errors.PluginError` for a plugin made
        without ``cancellable=True``.
        """
        if not self._cancellable:
            raise PluginError(f"{self.name}: cancel() needs Plugin(..., cancellable=True), "
                              "which turns on the epoch checks that let a call be ended")
        if self._depth == 0:
            return False
        self._cancel_requested = True
        return True

    async def call_async(self, name: str, data: bytes | bytearray | memoryview = b"") -> bytes:
        """:meth:`call` in a worker thread, so the event loop runs on; the same limits,
        the same errors. Cancelling the awaiting task cancels the call (``cancellable=True``
        plugins; others finish it first) and raises ``asyncio.CancelledError``."""
        return await self._off_loop(self.call, name, bytes(data))

    async def call_int_async(self, name: str, *args: int) -> int | tuple[int, ...] | None:
        """:meth:`call_int` in a worker thread; see :meth:`call_async`."""
        return await self._off_loop(self.call_int, name, *args)

    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        import asyncio

        future = asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self._cancellable:
                self.cancel()
            with contextlib.suppress(BaseException):
                await future  # the thread ends (PluginCancelled) before the task does
            raise

    def _on_epoch(self) -> str | None:
        """The store's epoch deadline passed (each tick, cancellable plugins only): end the
        call if it was cancelled or is past its deadline, else let it run one more tick."""
        if self._cancel_requested:
            error: PluginError = self._cancelled_error()
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            error = DeadlineExceeded(f"{self.name}: the call ran past its deadline of "
                                     f"{self.limits.timeout} s (Limits.timeout)")
        else:
            return None
        if self._pending is None:
            self._pending = error
        return f"callgate: {type(error).__name__}"

    def _cancelled_error(self) -> PluginCancelled:
        return PluginCancelled(f"{self.name}: the call was cancelled (Plugin.cancel)")

    # -- memory and output -----------------------------------------------------------------

    def _memory_of(self, caller: int) -> GuestMemory | None:
        """The calling instance's exported ``memory`` as a bounds-checked window.

        The caller's store is this plugin's, so its context is ``self._ctx``. A memory
        moves (if ever) only when it grows, so the window is rebuilt only when the size
        changed: one C call per gate call instead of three and an allocation.
        """
        mem = self._memory
        if mem is None:
            mem = backend.caller_memory(caller)
            if mem is None:
                return None
            self._set_memory(mem)
        size = _memory_size(self._ctx, mem)
        window = self._window
        if window is None or window.size != size:
            window = self._window = GuestMemory(*backend.memory_window(self._ctx, mem))
        return window

    def _set_memory(self, mem: Raw) -> None:
        self._memory = mem
        if self._native is not None:
            self._native.set_memory(backend.memory_blob(mem))

    def memory(self) -> GuestMemory | None:
        """The plugin's exported memory, for host code between calls (None if none).

        The view follows the memory: kept across calls, it still sees all of it after the
        guest grows it. Raises ``PluginClosed`` (or ``PluginPoisoned``) when the plugin
        cannot be used. Every read and write of the view raises
        :class:`~callgate.gates.memory.GuestMemoryError` for a range outside the memory,
        and :class:`~callgate.gates.errors.PluginClosed` once the plugin is closed.
        """
        self._check_open()
        if self._memory is None:
            return None
        return LiveMemory(self._memory_window)

    def _memory_window(self) -> tuple[int, int]:
        mem = self._memory
        if mem is None or self._closed:
            raise PluginClosed(f"plugin {self.name} is closed; its memory is gone")
        return backend.memory_window(self._ctx, mem)

    def remaining_time(self) -> float | None:
        """Seconds left before the current call's deadline (None: no deadline).

        Gates that block (``poll_oneoff``, a blocking read) wait at most this long,
        then call :meth:`check_deadline`; epochs cannot interrupt Python code. A cancellable
        plugin's gates wait at most :data:`CANCEL_POLL` seconds at a time, so a
        :meth:`cancel` reaches them too.
        """
        if self._cancellable:
            left = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            return CANCEL_POLL if left is None else min(left, CANCEL_POLL)
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def check_deadline(self) -> None:
        """Raise :class:`DeadlineExceeded` if the current call is past its deadline (and
        :class:`~callgate.gates.errors.PluginCancelled` if it was cancelled)."""
        if self._cancel_requested:
            raise self._cancelled_error()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self._deadline_error()

    def _deadline_error(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"{self.name}: the call ran past its deadline of "
                                f"{self.limits.timeout} s inside a gate (Limits.timeout)")

    def charge_output(self, nbytes: int) -> None:
        """Count ``nbytes`` against this call's output cap; raise once it is passed."""
        native = self._native
        if native is None:
            self._output_used += nbytes
            used = self._output_used
        else:  # the native core's gates charge the same counter
            shared = native.shared
            used = min(int(shared.output_used) + nbytes, native_gate.U64)
            shared.output_used = used
        cap = self.limits.output
        if cap is not None and used > cap:
            raise self._output_error()

    def _output_error(self) -> OutputLimitExceeded:
        return OutputLimitExceeded(f"{self.name}: output of this call passed the limit of "
                                   f"{self.limits.output} bytes (Limits.output)")

    def _reset_output(self) -> None:
        if self._native is None:
            self._output_used = 0
        else:
            self._native.shared.output_used = 0

    @property
    def output_used(self) -> int:
        """Bytes charged to the current (or last) outermost call's output budget."""
        if self._native is not None:
            return int(self._native.shared.output_used)
        return self._output_used

    # -- the native core's audit records ---------------------------------------------------

    def _flush_native_audit(self) -> None:
        """Deliver the records of the calls the native core denied, in order, through the
        sink (and its rate limit) as if each had been emitted at its call."""
        native = self._native
        if native is None or not native.audit_pending():
            return
        try:
            self.audit_sink.emit_many(self.name, NativeAuditBatch(native, self))
        finally:
            native.audit_clear()

    def _flush_native_from_c(self) -> int:
        """The native core's flush: 0, or 1 with the exception stashed for the call."""
        try:
            self._flush_native_audit()
            return 0
        except BaseException as exc:
            if self._pending is None:
                self._pending = exc
            return 1

    # -- introspection ---------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, dict[str, int]]:
        """Per gate imported: how many calls got each verdict (``allow``, ``errno`` …)."""
        out: dict[str, dict[str, int]] = {}
        native = self._native.counts() if self._native is not None else None
        width = len(audit_mod.COUNTER_NAMES)
        for binding in self._bindings:
            slot = out.setdefault(binding.spec.name, dict.fromkeys(audit_mod.COUNTER_NAMES, 0))
            for key, count in zip(audit_mod.COUNTER_NAMES, binding.counts, strict=True):
                slot[key] += count
            if native is not None and binding.native:  # the calls C finished
                row = native[binding.ip * width:(binding.ip + 1) * width]
                for key, count in zip(audit_mod.COUNTER_NAMES, row, strict=True):
                    slot[key] += count
        return out

    @property
    def poisoned(self) -> bool:
        """Whether a KILL_PROCESS verdict ended a call: every call since raises
        :class:`~callgate.gates.errors.PluginPoisoned`."""
        return self._poisoned is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (or loading failed): every call raises ``PluginClosed``."""
        return self._closed

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Free the store, the gate callbacks and provider state (fds …); idempotent.

        Other threads' calls finish first (close takes the plugin's lock). Closing from
        inside one of the plugin's own calls (a gate, the broker) is refused: the store
        is still executing wasm, and freeing it would pull memory from under the guest.
        """
        if self._lock._is_owned():  # type: ignore[attr-defined]  # RLock's own test
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
        self._alive[0] = False
        native = self._native
        if native is not None:
            native.shared.alive = 0  # a late call (a store kept elsewhere) goes to Python
            dispatch.forget_plugin(native, self._bindings)
            if native.audit_pending():
                with contextlib.suppress(Exception):  # closing: nothing to raise it into
                    self._flush_native_audit()
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
        self._window = None
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

def _result_converter(kinds: tuple[str, ...]) -> Callable[[Raw], IntResult]:
    """slots -> the Python result(s) of an integer export (signed, like wasmtime-py)."""
    if not kinds:
        return lambda slots: None
    if kinds == ("i64",):
        return lambda slots: int(slots[0] - (1 << 64) if slots[0] >> 63 else slots[0])
    if len(kinds) == 1:
        return lambda slots: _signed("i32", slots[0])
    return lambda slots: tuple(_signed(kind, slots[2 * i]) for i, kind in enumerate(kinds))


def _signed(kind: str, bits: int) -> int:
    if kind == "i32":
        bits &= M32
        return bits - (1 << 32) if bits >> 31 else bits
    return bits - (1 << 64) if bits >> 63 else bits


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


def _disk_cache(choice: CompileCache | bool) -> CompileCache | None:
    if isinstance(choice, CompileCache):
        return choice
    return default_cache() if choice else None


@lru_cache(maxsize=1)
def _default_sink() -> audit_mod.AuditSink:
    return audit_mod.AuditSink()
