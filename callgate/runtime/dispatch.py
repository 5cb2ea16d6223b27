"""Gate dispatch: the raw wasmtime callback behind every import, and what each verdict does.

For each import of a plugin the runtime builds one :class:`GateBinding`. Its
callback is generated Python source, specialised once per binding for the gate's
signature and for what the filter can say about it:

* the filter's result for this gate number is *constant* and ALLOW (the
  constant-action table says so): the callback runs the gate without evaluating
  anything;
* constant and not ALLOW: straight to the verdict's handling;
* otherwise: the compiled filter is called with ``(nr, arch, ip, a0..a5)``.

Arguments are read from the raw slot array as u64 (i32 slots masked to 32 bits,
so a guest's ``-1`` is ``0xffffffff``); ``seccomp_data`` is never materialised as
bytes, the compiled filter takes its fields as ints. A gate with more than six
parameters shows only the first six to the filter, as a syscall would.

Every exception raised below the callback (gate code, broker, a verdict) is
caught, stashed on the plugin and turned into a wasm trap; the plugin re-raises
the original exception when the call returns. A raw callback must never raise:
wasmtime would ignore it and the guest would run on.

**The native path.** When callgate's native core is built (and ``CALLGATE_PURE_PYTHON``
is not set), an import whose filter can say anything but a plain ALLOW, or whose gate has
a C body (the hot WASI gates), is bound to the core's C callback instead
(``callgate/native/csrc/gate.h``): C evaluates the same verified program, answers
ERRNO and KILL itself (buffering their audit records for :meth:`AuditSink.emit_many`),
runs the C body on ALLOW, and hands every call it cannot decide exactly as this module
would to :func:`_fallback`, which runs the binding's generated callback, untouched
(``callback``, or ``allowed`` when C already found ALLOW: the filter is not run twice).
Imports that are a constant ALLOW into a Python body keep their direct ctypes callback.
The two trampolines C calls are made once, when this module is imported, so binding a
plugin natively makes no new C callback (nothing for kernel lockdown to refuse).
"""

from __future__ import annotations

import ctypes
import itertools
import struct
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from callgate.arch import AUDIT_ARCH_CALLGATE
from callgate.arch.gate_numbers import WASI_MODULE
from callgate.arch.wasi_errno import EIO, ENOSYS, EPERM, from_host
from callgate.bpf.actions import (
    MAX_ERRNO,
    SECCOMP_RET_ACTION_FULL,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_DATA,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    format_action,
)
from callgate.bpf.compiled import CompiledFilter
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import ARG_COUNT
from callgate.bpf.specialize import specialize
from callgate.gates import app as app_gates
from callgate.gates.errors import GateViolation, PluginClosed, PluginKilled
from callgate.gates.spec import GateCall, GateSpec
from callgate.gates.wasi import provider as wasi_provider
from callgate.gates.wasi.gate import GATE_DEFS
from callgate.gates.wasi.mirror import NativeWasiMirror
from callgate.gates.wasi.state import WasiState
from callgate.native import gate as native_gate
from callgate.runtime import audit, backend
from callgate.runtime.backend import CALLBACK
from callgate.runtime.broker import Allow, Errno, GateRequest, Value, check_errno
from callgate.runtime.timing import apply_timing

if TYPE_CHECKING:
    from callgate.runtime.plugin import Plugin

# What a raw callback returns for "no trap" (ctypes turns None into NULL).
NULL = None
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
# From this many params on, the callback reads its slots with one slice (measured: 7
# reads by index ~135 ns, one slice ~105 ns; for 1 param the index is cheaper).
SLICE_READ_MIN = 2
# What a TRAP verdict answers when the plugin has no broker ("denied").
NO_BROKER_ERRNO = EPERM
# USER_NOTIF with no broker and TRACE with no tracer: ENOSYS, as the kernel answers
# when no supervisor listens and no tracer is attached.
NO_LISTENER_ERRNO = ENOSYS

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def decode_arg(kind: str, bits: int) -> int | float:
    """A gate argument from its slot bits: ints stay unsigned, floats become floats."""
    if kind == "f32":
        return float(_F32.unpack(_U32.pack(bits & M32))[0])
    if kind == "f64":
        return float(_F64.unpack(_U64.pack(bits))[0])
    return bits


def encode_result(kind: str, value: int | float) -> int:
    """A result as the u64 a raw slot holds (ints wrap like wasm integers)."""
    if kind == "f32":
        return int(_U32.unpack(_F32.pack(value))[0])
    if kind == "f64":
        return int(_U64.unpack(_F64.pack(value))[0])
    if not isinstance(value, int):
        raise TypeError(f"an {kind} result must be an int, got {type(value).__name__}")
    return value & M64


class GateResultError(TypeError):
    """A gate (or broker ``Value``) returned results that do not fit the gate's signature."""


class GateBinding:
    """One import of one plugin: gate, import index, per-plugin call context, counters.

    ``counts`` are the calls this Python side decided; a natively bound import
    (``native`` is its C binding's address) also has C's, which ``Plugin.counters`` adds.
    """

    __slots__ = ("__weakref__", "allowed", "call", "callback", "counts", "ip", "native",
                 "native_id", "plugin", "spec")

    def __init__(self, plugin: Plugin, spec: GateSpec, ip: int, state: Any,
                 filter_fn: CompiledFilter | None, constant: int | None) -> None:
        self.plugin = plugin
        self.spec = spec
        self.ip = ip
        self.call = GateCall(spec, None, state, plugin)
        self.counts = [0] * len(audit.COUNTER_NAMES)
        # The policy's [gates] jitter and [gates.clocks] resolution (runtime/timing.py).
        self.callback = apply_timing(_make_callback(self, filter_fn, constant), state,
                                     plugin.plan.timing)
        self.allowed: Callable[..., Any] | None = None  # the body after C's ALLOW
        self.native = 0  # the C binding's address, if bound natively
        self.native_id = 0  # its id in _BINDINGS

    def killed(self) -> BaseException:
        """What a gate call of a plugin killed earlier ends with."""
        poisoned = self.plugin._poisoned
        if poisoned is not None:
            return poisoned
        return PluginClosed(f"plugin {self.plugin.name} is closed")

    # -- the slow path: every verdict but a plain ALLOW ---------------------------------

    def verdict(self, caller: Any, raw: Any, ret: int, args: tuple[int, ...]) -> Any:
        """Act on filter result ``ret`` for a call with ``args``; returns None or raises."""
        action = ret & SECCOMP_RET_ACTION_FULL
        data = ret & SECCOMP_RET_DATA
        if action == SECCOMP_RET_ALLOW:
            self.counts[audit.ALLOW] += 1
            return self.run(caller, raw, args)
        if action == SECCOMP_RET_LOG:
            self.counts[audit.LOG] += 1
            self._audit(args, ret, "allowed")
            return self.run(caller, raw, args)
        if action == SECCOMP_RET_ERRNO:
            self.counts[audit.ERRNO] += 1
            errno = min(data, MAX_ERRNO)
            self._audit(args, ret, f"denied errno {errno}")
            return self.deny(raw, errno)
        if action == SECCOMP_RET_TRAP:
            self.counts[audit.TRAP] += 1
            return self.ask(self.plugin.broker, caller, raw, args, ret, "trap", NO_BROKER_ERRNO)
        if action == SECCOMP_RET_USER_NOTIF:
            self.counts[audit.USER_NOTIF] += 1
            return self.ask(self.plugin.broker, caller, raw, args, ret, "user_notif",
                            NO_LISTENER_ERRNO)
        if action == SECCOMP_RET_TRACE:
            self.counts[audit.TRACE] += 1
            return self.ask(self.plugin.tracer, caller, raw, args, ret, "trace",
                            NO_LISTENER_ERRNO)
        kill = SECCOMP_RET_KILL_THREAD if action == SECCOMP_RET_KILL_THREAD else None
        if kill is not None:
            self.counts[audit.KILL_THREAD] += 1
            self._audit(args, ret, "call aborted")
            raise GateViolation(self.spec.name, self.spec.number, "KILL_THREAD",
                                self.plugin.name)
        # KILL_PROCESS, and (as in the kernel) any action value it does not know.
        self.counts[audit.KILL_PROCESS] += 1
        self._audit(args, ret, "plugin killed")
        error = PluginKilled(self.spec.name, self.spec.number, format_action(ret),
                             self.plugin.name)
        self.plugin._poison(error)
        raise error

    def run(self, caller: Any, raw: Any, args: tuple[int, ...]) -> Any:
        """Run the gate's implementation and store its results in the slots."""
        spec = self.spec
        call = self.call
        if spec.uses_memory:
            call.memory = self.plugin._memory_of(caller)
        values = spec.func(call, *(decode_arg(k, a) for k, a in zip(spec.params, args,
                                                                        strict=True)))
        self.store(raw, values)
        return NULL

    def store(self, raw: Any, values: Any) -> None:
        kinds = self.spec.results
        if not kinds:
            return
        if not isinstance(values, tuple):
            values = (values,)
        if len(values) != len(kinds):
            raise GateResultError(f"gate {self.spec.name} returned {len(values)} value(s) "
                                  f"{values!r}; its signature has {len(kinds)} result(s) "
                                  f"{kinds}")
        for i, (kind, value) in enumerate(zip(kinds, values, strict=True)):
            try:
                raw[2 * i] = encode_result(kind, value)
            except (TypeError, struct.error) as exc:
                raise GateResultError(f"gate {self.spec.name} result {i}: {exc}") from None

    def deny(self, raw: Any, errno: int) -> Any:
        """Answer ``errno`` in the gate's convention (may raise GateDenied)."""
        self.store(raw, self.spec.errno_results(errno))
        return NULL

    def ask(self, decider: Callable[[GateRequest], Any] | None, caller: Any, raw: Any,
            args: tuple[int, ...], ret: int, action: str, absent_errno: int) -> Any:
        """TRAP / USER_NOTIF go to the broker, TRACE to the tracer; absent: deny."""
        if decider is None:
            self._audit(args, ret, f"denied errno {absent_errno} (no "
                        f"{'tracer' if action == 'trace' else 'broker'})")
            return self.deny(raw, absent_errno)
        memory = self.plugin._memory_of(caller)
        request = GateRequest(self.spec, args, memory, action, ret & SECCOMP_RET_DATA,
                              self.ip, self.plugin)
        answer = decider(request)
        if answer is None and action == "trace":
            answer = Allow()
        if isinstance(answer, Allow):
            self._audit(args, ret, f"{action}: allowed")
            return self.run(caller, raw, args)
        if isinstance(answer, Errno):
            # Errno checks n when it is built; check again, since the guest must never
            # see a denial cut to its result width (65536 as a u16 is 0: success).
            errno = check_errno(answer.n)
            self._audit(args, ret, f"{action}: errno {errno}")
            return self.deny(raw, errno)
        if isinstance(answer, Value):
            self._audit(args, ret, f"{action}: value {list(answer.results)}")
            self.store(raw, answer.results)
            return NULL
        raise TypeError(f"the {'tracer' if action == 'trace' else 'broker'} returned "
                        f"{answer!r}; return ALLOW, Errno(n) or Value(...) from "
                        "callgate.runtime.broker")

    def _audit(self, args: tuple[int, ...], ret: int, outcome: str) -> None:
        plugin = self.plugin
        if plugin._native is not None:
            plugin._flush_native_audit()  # the records C buffered go first, in call order
        record = audit.AuditRecord(audit.now(), plugin.name, self.spec.name, self.spec.number,
                                   self.spec.module, args, format_action(ret), outcome)
        plugin.audit_sink.emit(record, ret & SECCOMP_RET_ACTION_FULL)


def outcome_of(ret: int) -> str:
    """What the runtime did on a verdict C acts on (ERRNO, KILL_*), as :meth:`verdict` says."""
    action = ret & SECCOMP_RET_ACTION_FULL
    if action == SECCOMP_RET_ERRNO:
        return f"denied errno {min(ret & SECCOMP_RET_DATA, MAX_ERRNO)}"
    if action == SECCOMP_RET_KILL_THREAD:
        return "call aborted"
    return "plugin killed"


# -- callback generation -----------------------------------------------------------------

_CODE_CACHE: dict[tuple[Any, ...], Any] = {}


def _callback_source(params: tuple[str, ...], results: tuple[str, ...], mode: str,
                     uses_memory: bool) -> str:
    """Source of ``factory(...) -> cb`` for one signature and filter mode."""
    lines = ["def factory(binding, filter_fn, const, impl, call, counts, memory_of, trap, NULL,",
             "            NR, ARCH, IP, alive):",
             "    verdict = binding.verdict",
             "    def cb(env, caller, raw, n):",
             "        try:",
             "            if not alive[0]:",  # killed (in any frame): no gate runs again
             "                return trap(binding.killed())"]
    names = [f"a{i}" for i in range(len(params))]
    narrow = [i for i, kind in enumerate(params) if kind in ("i32", "f32")]  # low 32 bits
    if len(params) >= SLICE_READ_MIN:  # one slice of the pointer beats n index operations
        lines.append(f"            {', '.join(names)}, = raw[0:{2 * len(params)}:2]")
        lines += [f"            a{i} &= 0xFFFFFFFF" for i in narrow]
    else:
        lines += [f"            a{i} = raw[{2 * i}]{' & 0xFFFFFFFF' if i in narrow else ''}"
                  for i in range(len(params))]
    args_tuple = "(" + "".join(f"{n}, " for n in names) + ")"
    fargs = (names + ["0"] * ARG_COUNT)[:ARG_COUNT]
    ints = all(kind in ("i32", "i64") for kind in params)
    body = []
    if uses_memory:
        body.append("call.memory = memory_of(caller)")
    if ints:
        body.append(f"r = impl(call, {', '.join(names)})")
        body.append("counts[0] += 1")
        if len(results) == 1 and results[0] in ("i32", "i64"):
            body += ["try:", "    raw[0] = r & 0xFFFFFFFFFFFFFFFF",
                     "except TypeError:", "    binding.store(raw, r)"]
        elif results:
            body.append("binding.store(raw, r)")
        body.append("return NULL")
    else:
        body = [f"return verdict(caller, raw, {SECCOMP_RET_ALLOW}, {args_tuple})"]
    if mode == "allow":
        lines += [f"            {line}" for line in body]
    elif mode == "filter":
        lines.append(f"            ret = filter_fn(NR, ARCH, IP, {', '.join(fargs)})")
        lines.append(f"            if ret == {SECCOMP_RET_ALLOW}:")
        lines += [f"                {line}" for line in body]
        lines.append(f"            return verdict(caller, raw, ret, {args_tuple})")
    else:
        lines.append(f"            return verdict(caller, raw, const, {args_tuple})")
    lines += ["        except BaseException as exc:",
              "            return trap(exc)",
              "    return cb"]
    return "\n".join(lines) + "\n"


def _make_callback(binding: GateBinding, filter_fn: CompiledFilter | None,
                   constant: int | None) -> Callable[..., Any]:
    spec = binding.spec
    if constant is None:
        mode = "filter"
    elif constant == SECCOMP_RET_ALLOW:
        mode = "allow"
    else:
        mode = "fixed"
    key = (spec.params, spec.results, mode, spec.uses_memory)
    code = _CODE_CACHE.get(key)
    if code is None:
        code = compile(_callback_source(*key), f"<callgate gate {spec.params}->{spec.results}>",
                       "exec")
        _CODE_CACHE[key] = code
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    plugin = binding.plugin
    # The filter sees nr = gate number, arch = the gate arch, ip = the import index.
    factory: Callable[..., Callable[..., Any]] = namespace["factory"]
    return factory(binding, filter_fn, constant, spec.func, binding.call,
                                binding.counts, plugin._memory_of, plugin._trap, NULL,
                                spec.number & M32, AUDIT_ARCH_CALLGATE, binding.ip,
                                plugin._alive)


# -- the native path ---------------------------------------------------------------------

NATIVE = native_gate.available()
# binding id -> its GateBinding; plugin id -> its Plugin (weakly: a dropped plugin goes).
_BINDINGS: dict[int, weakref.ref[GateBinding]] = {}
_PLUGINS: dict[int, weakref.ref[Plugin]] = {}
_ids = itertools.count(1)
FLUSH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64)


def _gone() -> int:
    return backend.new_trap(b"callgate: a gate call of a plugin that is gone")


def _fallback(env: int, caller: int, raw: Any, n: int) -> int | None:
    """C hands a call to Python: ``env`` is the binding id * 2, + 1 when C found ALLOW."""
    try:
        ref = _BINDINGS.get(env >> 1)
        binding = ref() if ref is not None else None
        if binding is None:
            return _gone()
        if env & 1:
            allowed = binding.allowed
            assert allowed is not None
            result: int | None = allowed(env, caller, raw, n)
            return result
        result = binding.callback(env, caller, raw, n)
        return result
    except BaseException:  # a raw callback must never raise
        return _gone()


def _flush(plugin_id: int) -> int:
    """C's audit buffer is full (or an outermost call ends): drain it into the sink.
    0, or 1 when that raised (the exception is stashed on the plugin)."""
    try:
        ref = _PLUGINS.get(plugin_id)
        plugin = ref() if ref is not None else None
        if plugin is None:
            return 0
        return plugin._flush_native_from_c()
    except BaseException:
        return 1


if NATIVE:
    # Made once, now: kernel lockdown refuses new C callbacks later, and none is needed.
    _FALLBACK = CALLBACK(_fallback)
    _FLUSH = FLUSH_CALLBACK(_flush)
    native_gate.set_errno_map({n: from_host(n) for n in range(1, 256)}, EIO)
    ENTRY = native_gate.NativePlugin.entry_address()
    FINALIZER = native_gate.NativePlugin.finalizer_address()


def native_plugin(plugin: Plugin, nimports: int, states: dict[str, object]
                  ) -> native_gate.NativePlugin | None:
    """The plugin's native gate state (WASI states mirrored), or None: pure Python."""
    if not NATIVE or plugin.plan.mode != "compiled" or plugin.plan.timing.active:
        return None  # (timing options are applied in Python: runtime/timing.py)
    if getattr(plugin, "_cancellable", False):
        return None  # cancel() reaches gates through check_deadline, which C does not call
    trap_new, memory_data, memory_size, func_call = backend.native_api()
    api = native_gate.HostApi(trap_new, memory_data, memory_size, func_call,
                              ctypes.cast(_FALLBACK, ctypes.c_void_p).value or 0,
                              ctypes.cast(_FLUSH, ctypes.c_void_p).value or 0)
    plugin_id = next(_ids)
    native = native_gate.NativePlugin(api, plugin_id, nimports,
                                      backend.context_address(plugin._ctx))
    native.set_output_cap(plugin.limits.output)
    for state in states.values():
        if isinstance(state, WasiState):
            NativeWasiMirror(native, state)
    _PLUGINS[plugin_id] = weakref.ref(plugin)
    return native


def forget_plugin(native: native_gate.NativePlugin | None, bindings: list[GateBinding]) -> None:
    """A closed plugin leaves the registries (C's late calls, if any, get a trap)."""
    for binding in bindings:
        _BINDINGS.pop(binding.native_id, None)
    if native is not None:
        _PLUGINS.pop(native.plugin_id, None)


def bind_native(binding: GateBinding, native: native_gate.NativePlugin,
                program: tuple[Insn, ...], constant: int | None) -> int:
    """Bind ``binding`` to the native core: its C binding's address (wasmtime's env), or 0
    when this import stays a plain Python callback."""
    spec = binding.spec
    body = _body_of(spec, binding.call.state)
    if constant == SECCOMP_RET_ALLOW and not body:
        return 0  # a constant ALLOW into Python: the direct callback is the fastest
    binding_id = next(_ids)
    address = native.bind(
        index=binding.ip, nr=spec.number & M32, arch=AUDIT_ARCH_CALLGATE, params=spec.params,
        nresults=len(spec.results), constant=constant,
        program=b"" if constant is not None else _packed(program, spec.number & M32),
        body=body, deny=_deny_mode(spec), binding_id=binding_id)
    if not address:
        return 0
    binding.allowed = _make_callback(binding, None, SECCOMP_RET_ALLOW)
    binding.native = address
    binding.native_id = binding_id
    _BINDINGS[binding_id] = weakref.ref(binding)
    return address


def _body_of(spec: GateSpec, state: object) -> int:
    """The C body of a WASI gate served by callgate's own WASI state, else 0."""
    if spec.module != WASI_MODULE or not isinstance(state, WasiState):
        return 0
    registered = GATE_DEFS.get(spec.name)
    if registered is None or registered.func is not spec.func:
        return 0
    if spec.name.startswith("clock_") and getattr(state, "clock_resolution_ns", None):
        return 0  # coarsened clocks are Python's (runtime/timing.py)
    return native_gate.body_id(spec.name)


_NEGATIVE = app_gates._errno_results("probe", 0, ("i32",)).__code__


def _deny_mode(spec: GateSpec) -> int:
    """How C answers ERRNO(n) for this gate: the conventions it knows, checked by example."""
    fn = spec.errno_results
    nres = len(spec.results)
    expect: Callable[[int], tuple[int, ...]]
    if fn is wasi_provider._errno_results and spec.results == ("i32",):
        mode, expect = native_gate.DENY_FIRST, lambda n: (n,)
    elif fn is wasi_provider._no_results and nres == 0:
        mode, expect = native_gate.DENY_NOTHING, lambda n: ()
    elif getattr(fn, "__code__", None) is _NEGATIVE and nres and spec.results[0] in ("i32",
                                                                                     "i64"):
        mode, expect = native_gate.DENY_NEGATIVE, lambda n: (-n, *(0,) * (nres - 1))
    else:
        return native_gate.DENY_PYTHON
    try:
        if all(tuple(fn(n)) == expect(n) for n in (0, 1, 8, MAX_ERRNO)):
            return mode
    except Exception:
        pass
    return native_gate.DENY_PYTHON


_PACK_CACHE: dict[int, tuple[tuple[Insn, ...], dict[int, bytes]]] = {}


def _packed(program: tuple[Insn, ...], nr: int) -> bytes:
    """The program specialised for ``nr`` (arch check and number dispatch run ahead), as
    packed sock_filter; cached per program (held, so its id stays its own)."""
    entry = _PACK_CACHE.get(id(program))
    if entry is None or entry[0] is not program:
        if len(_PACK_CACHE) >= 64:
            _PACK_CACHE.pop(next(iter(_PACK_CACHE)))
        entry = _PACK_CACHE[id(program)] = (program, {})
    packed = entry[1].get(nr)
    if packed is None:
        packed = entry[1][nr] = native_gate.pack_program(
            specialize(program, nr, AUDIT_ARCH_CALLGATE))
    return packed


class NativeAuditBatch:
    """The native core's buffered records of one plugin, for :meth:`AuditSink.emit_many`
    (an :class:`~callgate.runtime.audit.AuditBatch`). A record's time is its call's: C
    stamps CLOCK_MONOTONIC, turned into wall time with one offset per plugin (so records keep
    their order across flushes), taken again only when the wall clock was stepped."""

    __slots__ = ("_bindings", "_native", "_offset", "_plugin")

    def __init__(self, native: native_gate.NativePlugin, plugin: Plugin) -> None:
        self._native = native
        self._plugin = plugin.name
        self._bindings = plugin._bindings
        offset = time.time() - time.monotonic()
        if native.wall_offset is None or abs(offset - native.wall_offset) > 1e-3:
            native.wall_offset = offset
        self._offset = native.wall_offset

    def scan(self, state: native_gate.ScanState) -> None:
        self._native.audit_scan(state)

    def record(self, pos: int) -> tuple[audit.AuditRecord, int]:
        found = self._native.audit_read(pos)
        if found is None:
            raise IndexError(f"no buffered audit record at {pos}")
        _next, t_ns, index, ret, args = found
        spec = self._bindings[index].spec
        return (audit.AuditRecord(t_ns / 1e9 + self._offset, self._plugin, spec.name,
                                  spec.number, spec.module, args, format_action(ret),
                                  outcome_of(ret)), ret & SECCOMP_RET_ACTION_FULL)

    def group(self, binding: int, ret: int) -> tuple[tuple[str, int, str, str], int]:
        spec = self._bindings[binding].spec
        return (spec.name, spec.number, spec.module, format_action(ret)), \
            ret & SECCOMP_RET_ACTION_FULL

    def records(self) -> Iterator[tuple[audit.AuditRecord, int]]:
        pos = 0
        while (found := self._native.audit_read(pos)) is not None:
            yield self.record(pos)
            pos = found[0]
