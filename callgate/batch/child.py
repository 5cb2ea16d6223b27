"""One job, in the process forked for it: load, lock down, run ``_start``, report, exit.

The fork server (:mod:`callgate.batch.server`) has already compiled the module, resolved
the policy and derived the kernel program; this process only instantiates (which needs
no compiling, so wasmtime's compile threads, which do not survive fork, are never
needed), seals itself with the kernel layer - every fd closed but stdout, stderr and the
report pipe, no capabilities, NO_NEW_PRIVS, W^X, Landlock confining paths to the job's
scratch directory, the seccomp filter - and runs the guest. The report is one JSON
object written to the pipe; then the process leaves with ``os._exit`` (an interpreter
shutdown would make syscalls the filter has no reason to allow).

A report is data about the run: how it ended, the gate counters, the first violation and
a summary of the audit records. stdout and stderr never pass through here: they are the
server's memfds, which survive this process however it ends.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, NoReturn

import wasmtime

from callgate.arch import native_arch
from callgate.gates.errors import (
    AbiError,
    DeadlineExceeded,
    FuelExhausted,
    GateViolation,
    GuestTrap,
    InstanceLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PluginError,
    PluginLoadError,
    StackOverflow,
    TableLimitExceeded,
)
from callgate.gates.spec import GuestExit
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
from callgate.kernel.binding import ffi, libc
from callgate.kernel.landlock import plugin_rules, ruleset_for
from callgate.kernel.lockdown import drop_capabilities, lockdown, plugin_fds
from callgate.policy import Policy
from callgate.runtime.audit import AuditRecord, AuditSink
from callgate.runtime.limits import Limits
from callgate.runtime.plugin import Plugin

#: Where the guest sees its scratch directory: it is the guest's whole filesystem.
SCRATCH_GUEST = "/"
PR_SET_PDEATHSIG = 1
#: How close to Limits.memory counts as "reached it" (see _at_memory_cap).
_NEAR_CAP = 2 * 1024 * 1024
#: Audit records the report keeps in detail (the rest are only counted).
_KIND_LOG = 0x7FFC0000  # SECCOMP_RET_LOG: an audited call that was still allowed


@dataclass(frozen=True)
class Prepared:
    """Everything the server made ready for one job before forking."""

    name: str
    module: wasmtime.Module
    policy: Policy
    program: bytes  # the kernel filter, derived from policy for WASI's gates
    flags: int
    limits: Limits
    argv: list[str]
    env: dict[str, str]
    stdin: bytes
    scratch: str
    server: int  # the fork server's pid, this process's parent


class SummarySink(AuditSink):
    """The job's audit records, summarised in memory: counts per gate and action, and the
    first record that was not merely logged (the first violation)."""

    def __init__(self) -> None:
        super().__init__(rate=None)
        self.records = 0
        self.by_gate: dict[str, dict[str, int]] = {}
        self.first: dict[str, Any] | None = None

    def emit(self, record: AuditRecord, kind: int) -> None:
        self.records += 1
        per_gate = self.by_gate.setdefault(record.gate, {})
        per_gate[record.action] = per_gate.get(record.action, 0) + 1
        if self.first is None and kind != _KIND_LOG:
            self.first = {"gate": record.gate, "number": record.number,
                          "action": record.action, "outcome": record.outcome,
                          "args": list(record.args)}

    def flush(self) -> None:
        pass


def run(prepared: Prepared, report_fd: int, stdout_fd: int, stderr_fd: int) -> NoReturn:
    """The forked child's whole life. Never returns."""
    report: dict[str, Any]
    try:
        report = _run(prepared, report_fd, stdout_fd, stderr_fd)
    except BaseException as exc:  # a bug on our side, or host code that failed
        report = {"status": "crash", "detail": _one_line(exc)}
    try:
        _write_all(report_fd, json.dumps(report, separators=(",", ":")).encode())
    finally:
        os._exit(0)


def _run(prepared: Prepared, report_fd: int, stdout_fd: int, stderr_fd: int) -> dict[str, Any]:
    gc.disable()  # a short life; nothing cyclic worth collecting
    # Dies with the server; no core file for a job the filter kills; stdio are the memfds.
    zero = ffi.cast("unsigned long", 0)
    libc.prctl(PR_SET_PDEATHSIG, ffi.cast("unsigned long", signal.SIGKILL), zero, zero, zero)
    if os.getppid() != prepared.server:  # it died before PDEATHSIG was set: follow it
        os._exit(0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    drop_capabilities()  # while this is the only thread: the epoch ticker inherits none
    sink = SummarySink()
    config = WasiConfig(args=prepared.argv, env=prepared.env, stdin=prepared.stdin,
                        stdout="inherit", stderr="inherit",
                        preopens=[Preopen(prepared.scratch, SCRATCH_GUEST)])
    report: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nothing to print to: stderr is the guest's
        try:
            plugin = Plugin(prepared.module, policy=prepared.policy, limits=prepared.limits,
                            providers=[WasiProvider(config)], audit=sink, name=prepared.name,
                            compile_cache=False)
        except BaseException as exc:
            report.update(_ending(exc, None, prepared.limits))
            report.update(_summary(None, sink))
            return report
        _settle_threads()
        keep = {1, 2, report_fd, *plugin_fds(plugin)}
        lockdown(prepared.program, keep_fds=keep, flags=prepared.flags,
                 landlock=ruleset_for(prepared.policy.landlock, plugin_rules(plugin)))
        try:
            plugin.call_int("_start")
            report.update(status="ok", exit_code=0, detail="_start returned")
        except BaseException as exc:
            report.update(_ending(exc, plugin, prepared.limits))
        report.update(_summary(plugin, sink))
    return report


def _settle_threads(patience: float = 2.0) -> None:
    """Wait (up to ``patience`` s) until every other thread is parked in ``futex``.

    The only other thread here is the epoch ticker, started by the plugin just now. A
    new thread's first moments are syscalls of its own (glibc registers ``rseq``, the
    ticker names itself with ``prctl``) that the filter does not allow; were lockdown
    to win that race on a busy machine, the thread would be killed - and the process
    with it. Parked in ``futex``, its start is over.
    """
    me = str(threading.get_native_id())
    futex = str(native_arch().number("futex"))
    until = time.monotonic() + patience
    while time.monotonic() < until:
        busy = False
        for tid in os.listdir("/proc/self/task"):
            if tid == me:
                continue
            try:
                with open(f"/proc/self/task/{tid}/syscall") as f:
                    nr = f.read().split(" ", 1)[0]
            except OSError:
                continue  # gone
            busy = busy or nr != futex
        if not busy:
            return
        time.sleep(0.0002)


def _ending(exc: BaseException, plugin: Plugin | None, limits: Limits) -> dict[str, Any]:
    """How the run ended, from what the call (or the load) raised."""
    if isinstance(exc, GuestExit):
        code = exc.code
        status = "ok" if code == 0 else "exit"
        if status == "exit" and _at_memory_cap(plugin, limits):
            return {"status": "memory", "exit_code": code,
                    "detail": f"exited {code} after its linear memory reached the cap of "
                              f"{limits.memory} bytes (Limits.memory)"}
        return {"status": status, "exit_code": code, "detail": f"exited with code {code}"}
    if isinstance(exc, GateViolation):  # KILL_PROCESS (PluginKilled) or KILL_THREAD
        return {"status": "killed", "gate": {"name": exc.gate, "number": exc.number,
                                             "action": exc.action},
                "detail": f"killed by policy: gate {exc.gate} (#{exc.number}) answered "
                          f"{exc.action}"}
    simple: list[tuple[type[BaseException], str]] = [
        (FuelExhausted, "fuel"), (DeadlineExceeded, "deadline"),
        (OutputLimitExceeded, "output"), (StackOverflow, "stack"),
        (MemoryLimitExceeded, "memory"),
        (TableLimitExceeded, "refused"), (InstanceLimitExceeded, "refused"),
        (AbiError, "refused"), (PluginLoadError, "refused"),
    ]
    for kind, status in simple:
        if isinstance(exc, kind):
            detail = str(exc)
            if isinstance(exc, AbiError):
                detail = f"not a WASI command: {exc}"
            return {"status": status, "detail": detail}
    if isinstance(exc, GuestTrap):
        if _at_memory_cap(plugin, limits):
            return {"status": "memory", "trap": exc.trap,
                    "detail": f"trapped ({exc.trap}) after its linear memory reached the cap "
                              f"of {limits.memory} bytes (Limits.memory): an allocation was "
                              "refused"}
        return {"status": "trap", "trap": exc.trap, "detail": str(exc).splitlines()[0]}
    if isinstance(exc, PluginError):
        return {"status": "trap", "detail": _one_line(exc)}
    return {"status": "crash", "detail": f"host code raised {_one_line(exc)}"}


def _at_memory_cap(plugin: Plugin | None, limits: Limits) -> bool:
    """Did the guest's memory reach (nearly) its cap? wasmtime answers a refused
    ``memory.grow`` with -1 to the guest and tells the host nothing, so this is inferred:
    within the last tenth (at least 2 MiB) of ``Limits.memory``, an allocator's next
    request - a malloc of a megabyte, a vector doubling - is the one that was refused."""
    if plugin is None or limits.memory is None:
        return False
    return _memory_bytes(plugin) + max(_NEAR_CAP, limits.memory // 10) > limits.memory


def _memory_bytes(plugin: Plugin | None) -> int:
    try:
        memory = plugin.memory() if plugin is not None else None
    except PluginError:
        return 0
    return 0 if memory is None else int(memory.size)


def _summary(plugin: Plugin | None, sink: SummarySink) -> dict[str, Any]:
    counters: dict[str, dict[str, int]] = {}
    if plugin is not None:
        for gate, counts in plugin.counters.items():
            used = {kind: n for kind, n in counts.items() if n}
            if used:
                counters[gate] = used
    return {"counters": counters, "first_violation": sink.first,
            "audit": {"records": sink.records, "by_gate": sink.by_gate},
            "memory_bytes": _memory_bytes(plugin)}


def _one_line(exc: BaseException) -> str:
    # format_exception_only: no source lines to read (Landlock would refuse them).
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
