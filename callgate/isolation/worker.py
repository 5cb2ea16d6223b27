"""Process isolation: run a service (a plugin) in a locked-down subprocess, from the parent.

The parent is small and trusted; the worker holds only what the parent passes it:

* a socketpair for calls (its only channel back), kept by fd number in the filter;
* named fds, such as preopened directories, sent with SCM_RIGHTS - never paths;
* stdin/stdout/stderr as the parent chose them.

The worker compiles and instantiates, then locks itself down with both layers: the gate
filter inside the runtime and a kernel filter derived from the same policy
(:func:`callgate.kernel.hostpolicy.derive_host_policy`) plus the few syscalls its
socket needs. Requests the worker cannot answer alone - app-defined gates, TRAP calls
for the broker - come back here, to ``handlers``, with a :class:`RemoteMemory` onto the
guest's memory. A worker that dies (a kernel KILL, a crash, a timeout) surfaces as
:class:`WorkerCrashed`; :meth:`Worker.restart` starts a fresh one with the same setup.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from callgate.arch import Arch, native_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS
from callgate.bpf.insn import pack
from callgate.errors import CallgateError
from callgate.gates.memory import GuestMemory
from callgate.gates.spec import GateSpec
from callgate.isolation import wire
from callgate.isolation.errors import encode_error
from callgate.kernel.hostpolicy import HostPolicy, derive_host_policy
from callgate.kernel.landlock import LandlockReport, LandlockUnavailable
from callgate.kernel.lockdown import filter_flags
from callgate.kernel.supervisor import Decide, Supervisor
from callgate.policy.model import ArgCheck, Op, Policy, Rule, Section

Handler = Callable[[dict[str, Any], "RemoteMemory | None"], Any]

# What the worker's own plumbing needs beyond the host policy.
_SOCKET_IO = ("sendto", "recvfrom", "sendmsg", "recvmsg")


class WorkerCrashed(CallgateError, RuntimeError):
    """The worker process died or stopped answering; restart it to go on.

    ``signal`` is set when a signal killed it (SIGSYS: its kernel filter stopped a
    syscall), ``exit_code`` when it exited.
    """

    def __init__(self, message: str, exit_code: int | None = None, sig: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.signal = sig


class WorkerTimeout(WorkerCrashed):
    """A call took longer than the worker's timeout; the worker was killed."""


class WorkerError(CallgateError):
    """The service raised inside the worker: its exception type name and message.

    ``attrs`` holds the exception's simple (int/str) attributes, e.g. an exit code.
    """

    def __init__(self, type_name: str, message: str, attrs: Mapping[str, Any], remote_tb: str):
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.attrs = dict(attrs)
        self.remote_traceback = remote_tb


class RemoteMemory(GuestMemory):
    """The worker's guest memory, read and written from the parent during a forwarded call.

    Bounds are checked here against the size the worker reported, and again in the worker.
    """

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket, size: int) -> None:
        super().__init__(0, size)
        self._sock = sock

    def read(self, ptr: int, length: int) -> bytes:
        self.check(ptr, length)
        data = self._ask({"op": "mem_read", "ptr": ptr, "len": length})
        if not isinstance(data, bytes) or len(data) != length:
            raise WorkerError(
                "GuestMemoryError",
                "the worker answered a memory read with "
                f"{type(data).__name__} instead of {length} bytes",
                {},
                "",
            )
        return data

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        self.check(ptr, len(data))
        self._ask({"op": "mem_write", "ptr": ptr, "data": bytes(data)})

    def _ask(self, message: dict[str, Any]) -> Any:
        wire.send(self._sock, message)
        reply, fds = wire.recv(self._sock)
        for fd in fds:
            os.close(fd)
        if reply["op"] != "mem" or "error" in reply:
            raise WorkerError("GuestMemoryError", str(reply.get("error", reply["op"])), {}, "")
        return reply.get("value")


def worker_policy(
    policy: Policy,
    gate_specs: Iterable[GateSpec],
    sock_fd: int,
    *,
    arch: Arch | None = None,
    extra_rules: Sequence[Rule] = (),
) -> HostPolicy:
    """The worker's kernel policy: the host policy plus I/O on its one socket, and close."""
    arch = arch or native_arch()
    on_sock = ArgCheck(0, Op.EQ, sock_fd, width=32)
    plumbing = (
        Rule(
            _SOCKET_IO,
            SECCOMP_RET_ALLOW,
            (on_sock,),
            comment="calls and replies on the parent socket",
        ),
        Rule(("close",), SECCOMP_RET_ALLOW, comment="closing an fd can only shed authority"),
        *extra_rules,
    )
    kernel = policy.kernel or Section(default=SECCOMP_RET_KILL_PROCESS)
    merged = Policy(
        gates=policy.gates,
        kernel=Section(
            kernel.default, (*kernel.rules, *plumbing), kernel.mismatch_action, kernel.enosys_above
        ),
        source=policy.source,
        flags=policy.flags,
    )
    return derive_host_policy(merged, gate_specs, arch=arch)


class Worker:
    """One isolated worker process running ``service`` (``"module:function"``).

    ``service(config, fds, parent_link)`` is called in the worker to build the object
    whose ``call(method, args)`` serves requests; ``timeout`` bounds each call and
    ``start_timeout`` the start (compiling included). ``fds`` maps names to fds to hand
    over (they are duplicated; the caller keeps its own). ``handlers`` answer the
    worker's forwarded requests by op name. With ``supervise``, the worker's
    ``user_notif`` kernel rules are answered here by a :class:`Supervisor` running
    ``supervise`` (without it they fail with ENOSYS). Before its filter, the worker
    confines paths with Landlock: what the service holds (its ``landlock_rules()``, e.g.
    a plugin's preopens) and the policy's ``[landlock]`` section; ``landlock=False``
    leaves that step out, ``landlock_abi`` caps the ABI (0: act as without Landlock).
    The report is :attr:`landlock` once started.
    """

    def __init__(
        self,
        service: str,
        *,
        policy: Policy,
        gate_specs: Iterable[GateSpec] = (),
        config: Mapping[str, Any] | None = None,
        fds: Mapping[str, int] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        extra_rules: Sequence[Rule] = (),
        stdio: tuple[Any, Any, Any] = (subprocess.DEVNULL, None, None),
        timeout: float | None = None,
        start_timeout: float = 60.0,
        python_path: Sequence[str] = (),
        supervise: Decide | None = None,
        landlock: bool = True,
        landlock_abi: int | None = None,
    ) -> None:
        self._service = service
        self._policy = policy
        self._gate_specs = tuple(gate_specs)
        self._config = dict(config or {})
        self._fds = {name: os.dup(fd) for name, fd in (fds or {}).items()}
        self._handlers = dict(handlers or {})
        self._extra_rules = tuple(extra_rules)
        self._stdio = stdio
        self._timeout = timeout
        self._start_timeout = start_timeout
        self._python_path = tuple(python_path)
        self._supervise = supervise
        self._landlock = landlock
        self._landlock_abi = landlock_abi
        self.landlock: LandlockReport | None = None  # what the worker enforced at lockdown
        self._supervisor: Supervisor | None = None
        self._lock = threading.RLock()  # one conversation at a time on the socket
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self.host_policy: HostPolicy | None = None
        self.ready: dict[str, Any] = {}  # the worker's ready report: pid, threads, fds

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Worker:
        """Spawn the worker, hand it its setup and wait until it is locked down."""
        if self._proc is not None:
            raise CallgateError("the worker is already running; use restart()")
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.host_policy = worker_policy(
                self._policy, self._gate_specs, child_sock.fileno(), extra_rules=self._extra_rules
            )
            program = pack(self.host_policy.compile())
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "callgate.isolation.worker_main",
                    "--sock",
                    str(child_sock.fileno()),
                ],
                pass_fds=(child_sock.fileno(),),
                stdin=self._stdio[0],
                stdout=self._stdio[1],
                stderr=self._stdio[2],
                cwd="/",
                env=self._environment(),
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self._sock = parent_sock
        setup = {
            "op": "setup",
            "service": self._service,
            "config": self._config,
            "fd_names": list(self._fds),
            "program": program,
            "supervised": self._supervise is not None,
            "filter_flags": filter_flags(self._policy.flags),
            "landlock": self._landlock_setup(),
        }
        try:
            wire.send(parent_sock, setup, tuple(self._fds.values()))
            self._exchange(None, self._start_timeout)  # until "ready"
        except BaseException:
            self._kill_and_reap()
            raise
        return self

    def _landlock_setup(self) -> dict[str, Any] | None:
        """The policy's ``[landlock]`` section for the worker (None: no Landlock step)."""
        if not self._landlock:
            return None
        section = self._policy.landlock
        extra = {} if section is None else {
            "read": list(section.read), "write": list(section.write),
            "connect_tcp": list(section.connect_tcp), "bind_tcp": list(section.bind_tcp),
            "required": section.required,
        }
        return {**extra, "abi": self._landlock_abi}

    def _environment(self) -> dict[str, str]:
        """A minimal environment: the import path, and where the compile cache is (the
        worker compiles its module, and shares the parent's cache of compiled code)."""
        env = {"PATH": "/usr/bin:/bin"}
        paths = [*self._python_path, *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
        if paths:
            env["PYTHONPATH"] = ":".join(paths)
        for name in ("CALLGATE_CACHE", "CALLGATE_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def restart(self) -> Worker:
        """Start a fresh worker with the same setup (after a crash, or to reset state)."""
        self._kill_and_reap()
        return self.start()

    def close(self) -> None:
        """Stop the worker and release the fds this object holds."""
        if self._sock is not None and self.alive:
            try:
                wire.send(self._sock, {"op": "close"})
                self._proc.wait(5)  # type: ignore[union-attr]
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill_and_reap()
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- calls -------------------------------------------------------------------------------

    def call(self, method: str, *args: Any) -> Any:
        """Ask the service to run ``method(*args)``; answers forwarded requests meanwhile.

        Calls from several threads are serialised: the worker serves one at a time.
        """
        with self._lock:
            if self._sock is None or self._proc is None:
                raise WorkerCrashed("the worker is not running; call start() or restart()")
            try:
                wire.send(self._sock, {"op": "call", "method": method, "args": list(args)})
            except OSError:
                raise self._crashed() from None
            try:
                return self._exchange(method, self._timeout)
            except (WorkerError, WorkerCrashed):
                raise
            except BaseException:
                # Interrupted mid-conversation (Ctrl-C, a bug): the worker's state is
                # unknown and its answer would reach the next call, so it goes.
                self._kill_and_reap()
                raise

    def _exchange(self, method: str | None, timeout: float | None) -> Any:
        """Receive until the answer to ``method`` (or ``ready`` when None) arrives.

        ``timeout`` bounds the whole exchange, forwarded requests included, so a worker
        cannot keep the parent busy forever by asking questions.
        """
        assert self._sock is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    self._sock.settimeout(left)
                else:
                    self._sock.settimeout(None)
                message, fds = wire.recv(self._sock)
            except TimeoutError:
                self._kill_and_reap()
                raise WorkerTimeout(
                    f"the worker did not answer within {timeout}s and was killed; restart() it"
                ) from None
            except (wire.PeerClosed, ConnectionError):
                raise self._crashed() from None
            except wire.WireError as exc:
                self._kill_and_reap()
                raise WorkerCrashed(
                    f"the worker sent a malformed message ({exc}) and was killed"
                ) from None
            op = message["op"]
            if method is None and op == "ready" and self._supervise is not None and fds:
                self._supervisor = Supervisor(fds.pop(0), self._supervise).start()
            for fd in fds:  # a worker has no other business sending fds
                os.close(fd)
            if method is None and op == "ready":
                self.ready = message
                self._landlock_ready(message.get("landlock"))
                return None
            if method is not None and op == "result":
                return message.get("value")
            if op == "error":
                attrs = message.get("attrs")
                raise WorkerError(
                    str(message.get("type", "Error")),
                    str(message.get("message", "")),
                    attrs if isinstance(attrs, dict) else {},
                    str(message.get("traceback", "")),
                )
            if op in self._handlers:
                self._answer(op, message)
            else:
                self._kill_and_reap()
                raise WorkerCrashed(f"the worker sent an unexpected {op!r} request and was killed")

    def _landlock_ready(self, report: Any) -> None:
        self.landlock = LandlockReport.from_dict(report) if isinstance(report, dict) else None
        if self.landlock is not None and self.landlock.warning:
            warnings.warn(f"the worker: {self.landlock.warning}", LandlockUnavailable,
                          stacklevel=4)

    def _answer(self, op: str, message: dict[str, Any]) -> None:
        assert self._sock is not None
        size = message.get("memory_size")
        memory = RemoteMemory(self._sock, size) if isinstance(size, int) and size >= 0 else None
        try:
            reply = {"op": "reply", "value": self._handlers[op](message, memory)}
        except (wire.PeerClosed, ConnectionError):
            raise self._crashed() from None
        except Exception as exc:
            reply = {"op": "reply", "error": encode_error(exc)}
        wire.send(self._sock, reply)

    # --- death -------------------------------------------------------------------------------

    def _crashed(self) -> WorkerCrashed:
        proc = self._proc
        self._kill_and_reap()
        if proc is None or proc.returncode is None:
            return WorkerCrashed("the worker is gone")
        code = proc.returncode
        if code < 0:
            name = signal.Signals(-code).name
            why = " (its kernel filter stopped a syscall)" if -code == signal.SIGSYS else ""
            return WorkerCrashed(f"the worker was killed by {name}{why}; restart() it", sig=-code)
        return WorkerCrashed(f"the worker exited with status {code}; restart() it", exit_code=code)

    def _kill_and_reap(self) -> None:
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        self._proc = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
