"""A fork server: one process that imports the runtime once, compiles each module once, and
forks a fresh child for every job.

Started by the local engine (:mod:`callgate.batch.local`) as ``python -m
callgate.batch.server --sock FD``, in a session of its own (a Ctrl-C at the terminal
reaches the coordinator only, which stops the servers itself). It talks to the
coordinator over one socket, in strict alternation (frames of
:mod:`callgate.isolation.wire`: JSON, bytes base64-encoded, never pickle):

* ``setup`` -> ``ready``;
* ``job`` -> ``need`` (a module digest or policy key it does not hold) -> ``module`` /
  ``policy`` -> ... -> ``result``;
* ``close``, or the socket closing: kill the running job, clean up, exit.

Per job the server makes a scratch directory (mode 0700) with the job's files, two
memfds for stdout and stderr and a pipe for the child's report, compiles the module for
the job's engine setting if it has not yet (the compile cache on disk makes a restarted
server quick), derives the kernel filter for the job's policy (once per policy), then
forks. The child (:mod:`callgate.batch.child`) instantiates, locks down and runs. The
server waits for the report, the child's exit and the job's hard deadline -
``timeout + max(2 s, timeout / 4)``, past which it kills the child - then reads what the
child left (capped stdout/stderr, the files asked for, without following a symlink),
removes the scratch directory and answers with the result.

A job's child cannot reach the server: it holds no fd of the server's but its own
memfds and report pipe, its filter allows no kill, ptrace or process_vm_* and Landlock
scopes signals to its own domain. The report it writes is parsed as bounded data.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import select
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import wasmtime

from callgate.batch import child
from callgate.batch.schema import BatchError, check_result, empty_result, encode_bytes
from callgate.batch.sources import PolicySpec, build_policy
from callgate.bpf.insn import pack
from callgate.gates.errors import PluginLoadError
from callgate.gates.table import GateTable
from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.gates.wasi.capfs import open_beneath
from callgate.gates.wasi.provider import wasi_specs
from callgate.isolation import wire
from callgate.kernel.binding import ffi
from callgate.kernel.hostpolicy import derive_host_policy
from callgate.kernel.lockdown import capabilities, filter_flags
from callgate.policy import Policy
from callgate.runtime.compile_cache import default_cache
from callgate.runtime.filter_plan import plan_filter
from callgate.runtime.limits import Limits, SharedEngine
from callgate.runtime.loading import (
    as_binary,
    compile_module,
    header_of,
    header_of_module,
    resolve_imports,
)
from callgate.runtime.plugin import Plugin

#: What a result keeps of stdout and of stderr, each (the byte counts are always whole).
DEFAULT_CAPTURE = 64 * 1024
#: What a result keeps of each collected file, and of all of them together.
DEFAULT_FILE_CAP = 1024 * 1024
FILES_TOTAL_CAP = 16 * 1024 * 1024
#: The largest report a child may write (it is small: counters and a summary).
MAX_REPORT = 1024 * 1024
#: Compiled modules and module bytes a server keeps (least recently used go first).
COMPILED_KEPT = 128
MODULE_BYTES_KEPT = 1024 * 1024 * 1024
#: Jobs between full garbage collections of the server (it freezes its heap before
#: each fork, so children neither copy nor scan it).
COLLECT_EVERY = 256


#: The least time past a job's own deadline before its server kills it: the job's process
#: needs a moment to notice (a gate's bounded wait ends, the epoch ticks) and report, and
#: on a loaded machine a moment is long. Two engines running one batch report a deadline
#: the same way only if the guest's own deadline fires first, well before this.
GRACE = 2.0


def hard_deadline(timeout: float) -> float:
    """Seconds after the fork at which the server kills a job's process: the guest's own
    deadline (``Limits.timeout``, enforced inside it by epoch interruption) plus a grace
    for loading, locking down and host code the epoch cannot interrupt."""
    return timeout + max(GRACE, timeout / 4)


@dataclass(frozen=True)
class PreparedPolicy:
    policy: Policy
    program: bytes
    flags: int


class Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.modules: OrderedDict[str, bytes] = OrderedDict()
        self.module_bytes = 0
        self.compiled: OrderedDict[tuple[str, Any], wasmtime.Module] = OrderedDict()
        self.policies: dict[str, PreparedPolicy] = {}
        self.scratch_root = ""
        self.capture = DEFAULT_CAPTURE
        self.file_cap = DEFAULT_FILE_CAP
        self.jobs_run = 0
        self.table = GateTable([WasiProvider()])
        self.running: int | None = None  # the pid of the job's child, while it runs

    # -- the conversation ------------------------------------------------------------------

    def serve(self) -> int:
        setup, fds = wire.recv(self.sock)
        _close(fds)
        if setup.get("op") != "setup":
            raise wire.WireError(f"expected setup, got {setup.get('op')!r}")
        self.capture = int(setup.get("capture", DEFAULT_CAPTURE))
        self.file_cap = int(setup.get("file_cap", DEFAULT_FILE_CAP))
        _warm()
        root = setup.get("scratch_root") or None
        self.scratch_root = tempfile.mkdtemp(prefix="callgate-batch-", dir=root)
        try:
            wire.send(self.sock, {"op": "ready", "pid": os.getpid()})
            return self._loop()
        finally:
            shutil.rmtree(self.scratch_root, ignore_errors=True)

    def _loop(self) -> int:
        pending: dict[str, Any] | None = None
        while True:
            try:
                message, fds = wire.recv(self.sock)
            except wire.PeerClosed:
                return 0
            _close(fds)
            op = message.get("op")
            if op == "close":
                return 0
            if op == "job":
                pending = message["job"]
            elif op == "module" and "error" in message and pending is not None:
                # The coordinator cannot give the module after all (its file changed).
                result = empty_result(int(pending["index"]), str(pending["id"]),
                                      pending.get("meta"))
                result.update(status="error", detail=str(message["error"]))
                pending = None
                wire.send(self.sock, {"op": "result", "result": result})
                continue
            elif op == "module":
                self._keep_module(str(message["digest"]), bytes(message["data"]))
            elif op == "policy":
                self._keep_policy(PolicySpec.from_json(message["spec"]))
            else:
                raise wire.WireError(f"unexpected {op!r}")
            if pending is None:
                raise wire.WireError(f"{op!r} with no job waiting for it")
            need = self._missing(pending)
            if need is not None:
                wire.send(self.sock, {"op": "need", **need})
                continue
            job, pending = pending, None
            done = self.run(job)
            if done is None:  # the coordinator went away mid-job
                return 0
            wire.send(self.sock, {"op": "result", "result": done})

    def _missing(self, job: dict[str, Any]) -> dict[str, str] | None:
        if job["policy"] not in self.policies:
            return {"policy": job["policy"]}
        if job["module"] not in self.modules:
            return {"module": job["module"]}
        return None

    def _keep_module(self, digest: str, data: bytes) -> None:
        if digest in self.modules:
            return
        self.modules[digest] = data
        self.module_bytes += len(data)
        while self.module_bytes > MODULE_BYTES_KEPT and len(self.modules) > 1:
            gone, dropped = self.modules.popitem(last=False)
            self.module_bytes -= len(dropped)
            for key in [k for k in self.compiled if k[0] == gone]:
                del self.compiled[key]

    def _keep_policy(self, spec: PolicySpec) -> None:
        policy = build_policy(spec)
        host = derive_host_policy(policy, wasi_specs())
        program = pack(host.compile())
        # The gate filter's plan is cached by the runtime; make it here, before any fork,
        # so no child builds it again.
        plan = plan_filter(policy, self.table)
        for spec_ in wasi_specs():
            plan.for_gate(spec_.number)
        # A module importing every WASI gate, instantiated (never run) under this policy:
        # each gate's callback is generated for the verdict it gets here, once.
        with Plugin(_every_gate_module(), policy=policy, limits=_WARM_LIMITS,
                    compile_cache=False,
                    providers=[WasiProvider(WasiConfig(stdout=bytearray()))]):
            pass
        self.policies[spec.key] = PreparedPolicy(policy, program, filter_flags(policy.flags))

    # -- one job ---------------------------------------------------------------------------

    def run(self, job: dict[str, Any]) -> dict[str, Any] | None:
        started = time.monotonic()
        result = empty_result(int(job["index"]), str(job["id"]), job.get("meta"))
        limits = Limits(**job["limits"])
        try:
            module = self._compiled(job["module"], limits, str(job["id"]))
        except (PluginLoadError, BatchError) as exc:
            result.update(status="refused", detail=str(exc))
            result["time"]["wall_s"] = round(time.monotonic() - started, 6)
            return result
        policy = self.policies[job["policy"]]
        scratch = tempfile.mkdtemp(prefix="job-", dir=self.scratch_root)
        out = os.memfd_create("stdout", os.MFD_CLOEXEC)
        err = os.memfd_create("stderr", os.MFD_CLOEXEC)
        try:
            try:
                _place_files(scratch, job["files"])
            except OSError as exc:
                result.update(status="error", detail=f"cannot place the job's files: {exc}")
                return result
            prepared = child.Prepared(
                name=str(job["id"]), module=module, policy=policy.policy,
                program=policy.program, flags=policy.flags, limits=limits,
                argv=list(job["argv"]), env=dict(job["env"]), stdin=bytes(job["stdin"]),
                scratch=scratch, server=os.getpid())
            ended = self._fork_and_wait(prepared, out, err, hard_deadline(limits.timeout or 0))
            if ended is None:
                return None
            report, status, usage, killed_late = ended
            _fill(result, report, status, killed_late, limits)
            result["time"]["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 6)
            for key, fd in (("stdout", out), ("stderr", err)):
                data, size = _read_capped(fd, self.capture)
                result[key] = encode_bytes(data)
                result[f"{key}_bytes"] = size
            result["files"] = _collect(scratch, job["collect"], self.file_cap)
        finally:
            os.close(out)
            os.close(err)
            shutil.rmtree(scratch, ignore_errors=True)
        result["time"]["wall_s"] = round(time.monotonic() - started, 6)
        self.jobs_run += 1
        if self.jobs_run % COLLECT_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        return check_result(result)

    def _compiled(self, digest: str, limits: Limits, name: str) -> wasmtime.Module:
        shared = SharedEngine.for_limits(limits)
        key = (digest, shared.key)
        module = self.compiled.get(key)
        if module is not None:
            self.compiled.move_to_end(key)
            return module
        data = as_binary(self.modules[digest], name)  # WAT text is compiled too
        header = header_of(data)
        if header is not None:  # refuse before compiling, as Plugin does
            resolve_imports(header, self.table)
        module = compile_module(data, shared.engine, name, engine_tag=shared.key.tag,
                                disk=default_cache())
        header_of_module(module)  # what a child's Plugin asks of it: ask it here first
        self.compiled[key] = module
        while len(self.compiled) > COMPILED_KEPT:
            self.compiled.popitem(last=False)
        return module

    def _fork_and_wait(self, prepared: child.Prepared, out: int, err: int, deadline: float
                       ) -> tuple[dict[str, Any] | None, int, Any, bool] | None:
        """Fork the job's child and wait for it; None if the coordinator went away."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        gc.freeze()  # the heap as it is now: children neither scan nor copy it for gc
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            # Not the coordinator's socket: were this server to die, its end must close.
            os.close(self.sock.fileno())
            child.run(prepared, write_end, out, err)
        self.running = pid
        os.close(write_end)
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(read_end, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        poller.register(self.sock.fileno(), select.POLLIN)
        chunks: list[bytes] = []
        size = 0
        killed_late = False
        until = time.monotonic() + deadline
        exited, pipe_open = False, True
        try:
            while pipe_open or not exited:
                left = until - time.monotonic()
                if left <= 0 and not killed_late:
                    _kill(pid)
                    killed_late = True
                wait_ms = 100 if killed_late else max(1, int(left * 1000) + 1)
                for fd, _ in poller.poll(wait_ms):
                    if fd == read_end:
                        chunk = os.read(read_end, 65536)
                        if not chunk:
                            poller.unregister(read_end)
                            pipe_open = False
                        elif size < MAX_REPORT:
                            chunks.append(chunk)
                            size += len(chunk)
                    elif fd == pidfd:
                        poller.unregister(pidfd)
                        exited = True
                    else:  # the coordinator: a close, or it went away
                        _kill(pid)
                        os.wait4(pid, 0)
                        return None
            _, status, usage = os.wait4(pid, 0)
        finally:
            self.running = None
            os.close(read_end)
            os.close(pidfd)
        report: dict[str, Any] | None = None
        if size and size < MAX_REPORT:
            try:
                loaded = json.loads(b"".join(chunks))
                report = loaded if isinstance(loaded, dict) else None
            except ValueError:
                report = None
        return report, status, usage, killed_late


#: C types lockdown's steps name (cffi parses a type string the first time it is used,
#: and a child's parse would be lost with the child).
_LOCKDOWN_TYPES = (
    "struct __user_cap_header_struct *", "struct __user_cap_data_struct[2]",
    "struct landlock_ruleset_attr *", "struct landlock_path_beneath_attr *",
    "struct landlock_net_port_attr *", "struct sock_filter[]", "struct sock_fprog *",
    "unsigned long", "long", "char[]", "uint32_t *",
)


#: The warm-up plugin: trusted, tiny, importing the kinds of gate a guest does.
_WARM_MODULE = b"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $a (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $a (i32.const 0) (i32.const 4)))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8)))))"""


#: The warm-up plugins' limits: with a deadline, so the epoch ticker's types are made too
#: (its thread then parks; a forked child starts its own: the ticker resets after fork).
_WARM_LIMITS = Limits(timeout=60.0)


@functools.cache
def _every_gate_module() -> bytes:
    """WAT of a module that imports every WASI preview1 gate and does nothing."""
    imports = "".join(
        f'  (import "{spec.module}" "{spec.name}" (func'
        f'{" (param " + " ".join(spec.params) + ")" if spec.params else ""}'
        f'{" (result " + " ".join(spec.results) + ")" if spec.results else ""}))\n'
        for spec in wasi_specs())
    return f'(module\n{imports}  (memory (export "memory") 1))'.encode()


def _warm() -> None:
    """Work every child would otherwise repeat, done once before the first fork: parsing
    the C types lockdown uses, looking up the symbol W^X pinning calls."""
    import ctypes

    capabilities()
    # A plugin of our own, instantiated and run here: the runtime's C types, callbacks and
    # per-signature code are made the first time, in every process that loads a plugin.
    with Plugin(_WARM_MODULE, limits=_WARM_LIMITS, compile_cache=False,
                providers=[WasiProvider(WasiConfig(stdout=bytearray()))]) as plugin:
        plugin.call_int("_start")
        plugin.memory()
    for name in _LOCKDOWN_TYPES:
        with contextlib.suppress(Exception):  # only a warm-up: a renamed type costs time
            ffi.typeof(name)
    ctypes.pythonapi.Py_IncRef  # noqa: B018  # resolved once, cached by ctypes


def _fill(result: dict[str, Any], report: dict[str, Any] | None, status: int,
          killed_late: bool, limits: Limits) -> None:
    """The result's ending, from the child's report and how its process ended."""
    signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if report is not None:  # what the job did, as far as it got
        for key in ("counters", "first_violation", "audit", "memory_bytes", "gate", "trap",
                    "exit_code"):
            if key in report:
                result[key] = report[key]
    if killed_late:
        result.update(status="deadline", signal=signal_number,
                      detail=f"killed by the worker {hard_deadline(limits.timeout or 0):g} s "
                             f"after it started (Limits.timeout={limits.timeout:g} s)")
    elif signal_number == signal.SIGSYS:
        result.update(status="kernel", signal=signal_number,
                      detail="the kernel seccomp filter killed the job's process (SIGSYS)")
    elif signal_number is not None:
        result.update(status="crash", signal=signal_number,
                      detail=f"the job's process died of {signal.Signals(signal_number).name}")
    elif report is None or "status" not in report:
        code = os.WEXITSTATUS(status)
        result.update(status="crash",
                      detail=f"the job's process exited with status {code} and no report")
    else:
        result["status"] = report["status"]
        result["detail"] = str(report.get("detail", ""))


def _place_files(scratch: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = os.path.join(scratch, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def _read_capped(fd: int, cap: int) -> tuple[bytes, int]:
    size = os.fstat(fd).st_size
    return os.pread(fd, min(size, cap), 0), size


def _collect(scratch: str, names: list[str], cap: int) -> dict[str, Any]:
    """The files asked for, each capped; None for one that is missing or not a regular
    file. Opened beneath the scratch directory without following any symlink: the job
    may have left links pointing anywhere."""
    out: dict[str, Any] = {}
    total = 0
    if not names:
        return out
    dirfd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            try:
                fd = open_beneath(dirfd, name, os.O_RDONLY | os.O_NONBLOCK, follow=False)
            except OSError:
                out[name] = None
                continue
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    out[name] = None
                    continue
                take = max(0, min(cap, FILES_TOTAL_CAP - total, info.st_size))
                data = os.pread(fd, take, 0)
                total += len(data)
                out[name] = {"size": info.st_size, "data": encode_bytes(data)}
            finally:
                os.close(fd)
    finally:
        os.close(dirfd)
    return out


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="callgate batch fork server (started by "
                                     "the local engine)")
    parser.add_argument("--sock", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    status = 1
    server = None
    try:
        server = Server(socket.socket(fileno=args.sock))
        status = server.serve()
    except BaseException:
        traceback.print_exc()
        if server is not None and server.running is not None:
            _kill(server.running)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


if __name__ == "__main__":
    main()
