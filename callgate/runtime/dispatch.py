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
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from callgate.arch import AUDIT_ARCH_CALLGATE
from callgate.arch.wasi_errno import ENOSYS, EPERM
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
from callgate.bpf.seccomp_data import ARG_COUNT
from callgate.gates.errors import GateViolation, PluginClosed, PluginKilled
from callgate.gates.spec import GateCall, GateSpec
from callgate.runtime import audit
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
    """One import of one plugin: gate, import index, per-plugin call context, counters."""

    __slots__ = ("call", "callback", "counts", "ip", "plugin", "spec")

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
        record = audit.AuditRecord(audit.now(), plugin.name, self.spec.name, self.spec.number,
                                   self.spec.module, args, format_action(ret), outcome)
        plugin.audit_sink.emit(record, ret & SECCOMP_RET_ACTION_FULL)


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
