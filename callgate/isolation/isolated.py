"""A plugin in a locked-down worker process: the runtime's Plugin, isolated.

:class:`IsolatedPlugin` takes what :class:`~callgate.runtime.Plugin` takes and runs
the plugin in a :class:`~callgate.isolation.worker.Worker`. Both layers come from the
one policy, compiled here in the parent: the ``[gates]`` filter (sent to the worker
as raw BPF, so the worker evaluates exactly the program the parent compiled) and the
kernel filter derived from it. What stays in the parent:

* app-defined gates - the worker holds a proxy per gate with the same name, number and
  signature, which forwards the call; the real function runs here with a
  :class:`~callgate.isolation.worker.RemoteMemory` as ``call.memory``;
* the broker - TRAP and USER_NOTIF gate verdicts are decided here;
* every fd and path: the worker gets none but its socket and stdio.

Errors the plugin raises in the worker come back as the runtime's own error classes
(``PluginKilled``, ``FuelExhausted``, ``GuestExit`` …) when the name is one of
them; a dead worker is :class:`~callgate.isolation.worker.WorkerCrashed`.

An app gate running here sees an ``IsolatedPlugin`` as its
:class:`~callgate.gates.host.GateHost`: each forwarded call carries what is left of
the worker's output budget and deadline, so ``charge_output`` and
``check_deadline`` here decide exactly as they would in the worker, and the bytes
charged here are spent from the worker's budget when the gate returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

from callgate.bpf.actions import SECCOMP_RET_ALLOW
from callgate.bpf.insn import pack, unpack
from callgate.errors import CallgateError
from callgate.gates.app import AppGates
from callgate.gates.errors import DeadlineExceeded, OutputLimitExceeded, PluginClosed, PluginError
from callgate.gates.spec import GateCall, GateSpec
from callgate.gates.table import GateTable
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
from callgate.gates.wasi.provider import wasi_specs
from callgate.isolation.errors import rebuild_error
from callgate.isolation.worker import RemoteMemory, Worker, WorkerError
from callgate.isolation.worker_main import ParentLink
from callgate.kernel.landlock import PathRule, plugin_rules
from callgate.kernel.lockdown import plugin_fds
from callgate.kernel.supervisor import Decide
from callgate.policy import Policy
from callgate.policy.model import Section
from callgate.runtime.broker import ALLOW, Broker, Errno, GateRequest, Value
from callgate.runtime.filter_plan import gate_program, resolve_policy
from callgate.runtime.limits import Limits
from callgate.runtime.loading import module_bytes
from callgate.runtime.plugin import Plugin

SERVICE = "callgate.isolation.isolated:plugin_service"
# WASI gates by name, for the broker's requests (their code runs in the worker).
_WASI_SPECS = {spec.name: spec for spec in wasi_specs()}


class IsolationError(CallgateError, ValueError):
    """Something that cannot cross into a worker (a policy form, a verdict)."""


# --- the parent side ---------------------------------------------------------------------


class IsolatedPlugin:
    """A plugin running in its own locked-down process; the API of ``Plugin.call*``.

    ``module``: a path or wasm bytes; ``policy``: a :class:`Policy`, a path or policy
    text (None allows every gate, as in ``Plugin``); ``gates``: app-defined gates,
    run here; ``broker``: decides TRAP/USER_NOTIF gate verdicts, here; ``timeout``:
    seconds the parent waits for one call before killing the worker; ``wasi``: a
    :class:`~callgate.gates.wasi.WasiConfig` (default, as for ``Plugin``: WASI with
    nothing preopened) - its preopened directories are opened
    here and handed over as fds, and the guest's stdio is the worker's, which
    ``stdio`` sets (stdin ``/dev/null``, stdout and stderr inherited by default);
    ``supervise``: answers the policy's ``user_notif`` kernel rules from here
    (see :class:`~callgate.kernel.supervisor.Supervisor`).
    """

    def __init__(
        self,
        module: str | os.PathLike[str] | bytes,
        *,
        policy: Policy | str | os.PathLike[str] | bytes | None = None,
        gates: AppGates | None = None,
        limits: Limits | None = None,
        broker: Broker | None = None,
        name: str | None = None,
        timeout: float | None = None,
        wasi: WasiConfig | None = None,
        stdio: tuple[Any, Any, Any] = (subprocess.DEVNULL, None, None),
        supervise: Decide | None = None,
    ) -> None:
        # As Plugin: WASI by default, with nothing preopened and the worker's stdio.
        wasi = wasi or WasiConfig(stdin="inherit", stdout="inherit", stderr="inherit")
        self._gates = gates or AppGates()
        self._specs = {spec.name: spec for spec in self._gates.specs()}
        # What is left of the worker's budgets while a forwarded app gate runs here.
        self._output_left: int | None = None
        self._output_charged = 0
        self._deadline: float | None = None
        self.limits = limits or Limits()
        self._closed = False
        # Per thread: inside a conversation with the worker (a call, or the start)?
        self._in_call = threading.local()
        self._state = self._gates.instance_state(self)
        self.broker = broker
        self.name = name
        table = GateTable([WasiProvider(), self._gates])  # the numbering the worker's has
        resolved = resolve_policy(policy, table)
        if isinstance(resolved, tuple) and policy is not None:
            raise IsolationError("an isolated plugin needs a policy (a Policy, file or text), "
                                 "not a bare program: its kernel filter is derived from the "
                                 "policy's sections")
        self.policy = resolved if isinstance(resolved, Policy) else None
        if self.policy is not None and self.policy.timing.active:
            # The worker gets the compiled program only, which has no timing options.
            raise IsolationError(f"policy {self.policy.source} sets [gates] jitter or [gates."
                                 "clocks] resolution, which only an in-process Plugin applies "
                                 "so far; run it with Plugin, or without those options")
        data, _ = module_bytes(module)
        config = {
            "module": data,
            "gate_program": pack(gate_program(resolved, table.arch)),
            "app_gates": [_describe(spec) for spec in self._specs.values()],
            "limits": dataclasses.asdict(self.limits),
            "broker": broker is not None,
            "name": name,
            "wasi": _describe_wasi(wasi),
        }
        dirs = _open_preopens(wasi)
        try:
            self.worker = Worker(
                SERVICE,
                policy=self._kernel_view(),
                gate_specs=wasi_specs(),
                config=config,
                fds=dirs,
                handlers={"gate": self._app_gate, "broker": self._broker},
                timeout=timeout,
                stdio=stdio,
                supervise=supervise,
            )
        finally:
            for fd in dirs.values():  # the worker object keeps its own duplicates
                os.close(fd)
        self._start(self.worker.start)

    def _kernel_view(self) -> Policy:
        """The policy the kernel layer derives from; no policy means every gate may run."""
        if self.policy is not None:
            return self.policy
        return Policy(gates=Section(default=SECCOMP_RET_ALLOW))

    # --- calls -------------------------------------------------------------------------------

    def call(self, name: str, data: bytes | bytearray | memoryview = b"") -> bytes:
        """Call a bytes-ABI export in the worker (see ``Plugin.call``)."""
        result = self._remote("call", name, bytes(data))
        if not isinstance(result, bytes):
            raise IsolationError(f"the worker answered a bytes call with {type(result).__name__}")
        return result

    def call_int(self, name: str, *args: int) -> int | tuple[int, ...] | None:
        """Call an integer export in the worker (see ``Plugin.call_int``)."""
        result = self._remote("call_int", name, *args)
        return tuple(result) if isinstance(result, list) else result

    def _remote(self, method: str, *args: Any) -> Any:
        self._check_usable(f"{method}()")
        with self._conversation():
            try:
                return self.worker.call(method, *args)
            except WorkerError as exc:
                raise _local_error(exc) from None

    @property
    def _label(self) -> str:
        return f"isolated plugin {self.name}" if self.name else "the isolated plugin"

    def _check_usable(self, what: str) -> None:
        """Refuse a call after close(), or from inside one of this plugin's own calls.

        A gate of a ``Plugin`` may call back into it; an isolated plugin cannot be
        re-entered: its worker is blocked waiting for the answer of the very gate (or
        broker question) that would be calling, and a second conversation on the one
        socket would be taken for that answer.
        """
        if self._closed:
            raise PluginClosed(f"{self._label} is closed")
        if getattr(self._in_call, "active", False):
            raise PluginError(
                f"{self._label}: {what} was called from inside one of its own app gates or "
                "its broker; an isolated plugin cannot be re-entered while its worker waits "
                "for that gate's answer: do it after the call returns")

    @contextlib.contextmanager
    def _conversation(self) -> Iterator[None]:
        """Mark this thread as talking to the worker (app gates and the broker run in it)."""
        self._in_call.active = True
        try:
            yield
        finally:
            self._in_call.active = False

    # --- what the worker asks ---------------------------------------------------------------

    def _app_gate(self, message: dict[str, Any], memory: RemoteMemory | None) -> Any:
        spec = self._specs.get(str(message.get("name")))
        if spec is None:
            raise IsolationError(f"the worker asked for unknown app gate {message.get('name')!r}")
        args = [int(a) for a in message.get("args", [])]
        output_left, time_left = message.get("output_left"), message.get("time_left")
        self._output_left = int(output_left) if output_left is not None else None
        self._output_charged = 0
        self._deadline = None if time_left is None else time.monotonic() + float(time_left)
        try:
            result = spec.func(GateCall(spec, memory, self._state, self), *args)
            return {"value": list(result) if isinstance(result, tuple) else result,
                    "charged": self._output_charged}
        finally:
            self._output_left, self._deadline = None, None

    # --- the GateHost contract, for app gates running here ------------------------------

    def charge_output(self, nbytes: int) -> None:
        """Count ``nbytes`` against the forwarded call's output budget (see GateHost)."""
        self._output_charged += nbytes
        if self._output_left is not None and self._output_charged > self._output_left:
            raise OutputLimitExceeded(f"{self.name or 'isolated plugin'}: output of this call "
                                      f"passed the limit of {self.limits.output} bytes "
                                      "(Limits.output)")

    def remaining_time(self) -> float | None:
        """Seconds left before the forwarded call's deadline (None: no deadline)."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def check_deadline(self) -> None:
        """Raise ``DeadlineExceeded`` once the forwarded call is past its deadline."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise DeadlineExceeded(f"{self.name or 'isolated plugin'}: the call ran past its "
                                   f"deadline of {self.limits.timeout} s inside a gate "
                                   "(Limits.timeout)")

    def _broker(self, message: dict[str, Any], memory: RemoteMemory | None) -> Any:
        if self.broker is None:
            raise IsolationError("the worker asked for a broker decision, but there is none")
        name = str(message.get("gate"))
        spec = self._specs.get(name) or _WASI_SPECS.get(name)
        if spec is None:
            raise IsolationError(f"the worker asked about unknown gate {name!r}")
        request = GateRequest(
            gate=spec,
            args=tuple(int(a) for a in message.get("args", [])),
            memory=memory,
            action=str(message.get("action")),
            data=int(message.get("data", 0)),
            ip=int(message.get("ip", 0)),
            plugin=self,
        )
        return _encode_verdict(self.broker(request))

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.worker.pid

    def restart(self) -> IsolatedPlugin:
        """A fresh worker (and plugin instance) after a crash or a kill."""
        self._check_usable("restart()")
        self._start(self.worker.restart)
        return self

    def _start(self, start: Any) -> None:
        """Start the worker; a plugin that fails to load raises the runtime's own error."""
        with self._conversation():  # a start function may call app gates already
            try:
                start()
            except WorkerError as exc:
                self._closed = True
                self.worker.close()
                raise _local_error(exc) from None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the worker; idempotent. Refused from inside one of its own calls."""
        if self._closed:
            return
        self._check_usable("close()")
        self._closed = True
        self.worker.close()

    def __enter__(self) -> IsolatedPlugin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe_wasi(config: WasiConfig) -> dict[str, Any]:
    for stream in (config.stdin, config.stdout, config.stderr):
        if stream != "inherit":
            raise IsolationError(
                "a worker's WASI stdio is the worker's own stdin/stdout/stderr: use "
                "'inherit' in WasiConfig and redirect with IsolatedPlugin(stdio=...)"
            )
    if config.sockets:
        raise IsolationError("sockets cannot be handed to an isolated plugin yet")
    return {
        "args": list(config.args),
        "env": dict(config.env),
        "preopens": [{"guest": p.guest, "readonly": p.readonly, "pseudo_fs": p.pseudo_fs}
                     for p in config.preopens],
        "max_fds": config.max_fds,
    }


def _open_preopens(config: WasiConfig) -> dict[str, int]:
    """The preopened directories, opened here: the worker gets fds, never paths."""
    fds: dict[str, int] = {}
    try:
        for i, pre in enumerate(config.preopens):
            fds[f"preopen{i}"] = os.open(pre.host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        for fd in fds.values():
            os.close(fd)
        raise IsolationError(f"cannot preopen {exc.filename!r}: {exc.strerror}") from None
    return fds


def isolated_command(
    module: str | os.PathLike[str],
    policy: Policy | str | os.PathLike[str] | None,
    limits: Limits,
    wasi: WasiConfig,
    *,
    audit: str | None = None,
    broker: Any = None,
    tracer: Any = None,
) -> IsolatedPlugin:
    """``callgate run --isolate``: a WASI command in a worker that shares our stdio."""
    if audit is not None:
        raise IsolationError(
            "--audit is not available with --isolate yet: the audit file "
            "would have to be handed to the worker"
        )
    if tracer is not None:
        raise IsolationError(
            "--tracer is not available with --isolate yet: an isolated plugin forwards "
            "only broker questions to this process (use --broker with trap verdicts)"
        )
    return IsolatedPlugin(
        module, policy=policy, limits=limits, broker=broker, wasi=wasi, stdio=(None, None, None)
    )


def _describe(spec: GateSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "number": spec.number,
        "params": list(spec.params),
        "results": list(spec.results),
        "uses_memory": spec.uses_memory,
    }


def _encode_verdict(verdict: Any) -> dict[str, Any]:
    if verdict is ALLOW or verdict is None:
        return {"kind": "allow"}
    if isinstance(verdict, Errno):
        return {"kind": "errno", "n": int(verdict.n)}
    if isinstance(verdict, Value):
        return {"kind": "value", "results": [int(r) for r in verdict.results]}
    raise IsolationError(f"a broker must return ALLOW, Errno(n) or Value(...), got {verdict!r}")


def _local_error(exc: WorkerError) -> BaseException:
    """The runtime's own error class for an error raised in the worker, when it is one."""
    message = str(exc).split(": ", 1)[-1]
    local = rebuild_error(exc.type_name, message, exc.attrs)
    if local is None:
        return exc
    local.__cause__ = exc
    return local


# --- the worker side ---------------------------------------------------------------------


class _PluginService:
    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin

    def keep_fds(self) -> set[int]:
        """The fds the plugin holds (its WASI fd table); nothing else survives lockdown."""
        return plugin_fds(self.plugin)

    def landlock_rules(self) -> tuple[PathRule, ...]:
        """Its preopened directories, by the fds it holds: Landlock confines paths to them
        (read-only for ``:ro``), as ``callgate run --kernel`` does."""
        return plugin_rules(self.plugin)

    def call(self, method: str, args: list[Any]) -> Any:
        if method == "call":
            return self.plugin.call(str(args[0]), bytes(args[1]))
        if method == "call_int":
            result = self.plugin.call_int(str(args[0]), *(int(a) for a in args[1:]))
            return list(result) if isinstance(result, tuple) else result
        raise IsolationError(f"no such plugin method {method!r}")


def _proxy_gates(descriptions: list[dict[str, Any]], link: ParentLink) -> AppGates:
    gates = AppGates()
    for desc in descriptions:

        def forward(call: GateCall[object], *args: int, _name: str = desc["name"]) -> Any:
            memory = call.memory
            host = call.plugin
            assert isinstance(host, Plugin)
            cap = host.limits.output
            payload: dict[str, Any] = {
                "name": _name,
                "args": list(args),
                "output_left": None if cap is None else max(0, cap - host.output_used),
                "time_left": host.remaining_time(),
            }
            if memory is not None:
                payload["memory_size"] = memory.size
            reply = link.request("gate", payload, memory)
            host.charge_output(int(reply["charged"]))  # what the parent's gate wrote
            result = reply["value"]
            return tuple(result) if isinstance(result, list) else result

        gates.add(
            desc["name"],
            forward,
            params=desc["params"],
            results=desc["results"],
            number=desc["number"],
            uses_memory=desc["uses_memory"],
        )
    return gates


def _proxy_broker(link: ParentLink) -> Any:
    def broker(request: GateRequest) -> Any:
        payload = {
            "gate": request.gate.name,
            "args": list(request.args),
            "action": request.action,
            "data": request.data,
            "ip": request.ip,
        }
        if request.memory is not None:
            payload["memory_size"] = request.memory.size
        verdict = link.request("broker", payload, request.memory)
        kind = verdict.get("kind") if isinstance(verdict, dict) else None
        if kind == "allow":
            return ALLOW
        if kind == "errno":
            return Errno(int(verdict["n"]))
        if kind == "value":
            return Value(*(int(r) for r in verdict["results"]))
        raise IsolationError(f"the parent sent an unknown broker verdict {verdict!r}")

    return broker


def plugin_service(config: dict[str, Any], fds: dict[str, int], link: ParentLink) -> Any:
    """Build the plugin in the worker (compiled and instantiated before lockdown)."""
    try:
        providers = [WasiProvider(_worker_wasi(config["wasi"], fds))]
        plugin = Plugin(
            bytes(config["module"]),
            policy=tuple(unpack(bytes(config["gate_program"]))),
            gates=_proxy_gates(config["app_gates"], link),
            providers=providers,
            limits=Limits(**config["limits"]),
            broker=_proxy_broker(link) if config["broker"] else None,
            name=config.get("name"),
        )
    finally:
        for fd in fds.values():  # the WASI state holds its own; these are spent
            os.close(fd)
    return _PluginService(plugin)


def _worker_wasi(desc: dict[str, Any], fds: dict[str, int]) -> WasiConfig:
    """The worker's WasiConfig: each preopen reopened through the fd it was handed.

    ``/proc/self/fd/N`` names the handed fd, not a place in the filesystem: the
    worker reaches exactly the directory the parent opened.
    """
    preopens = [
        Preopen(f"/proc/self/fd/{fds[f'preopen{i}']}", p["guest"], bool(p["readonly"]),
                bool(p["pseudo_fs"]))
        for i, p in enumerate(desc["preopens"])
    ]
    return WasiConfig(
        args=desc["args"],
        env=desc["env"],
        preopens=preopens,
        stdin="inherit",
        stdout="inherit",
        stderr="inherit",
        max_fds=int(desc["max_fds"]),
    )
