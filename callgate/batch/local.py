"""The local engine: a pool of fork servers on this machine, fed by one coordinator loop.

``LocalEngine(workers=N)`` starts N fork servers (:mod:`callgate.batch.server`), each a
fresh ``python -m callgate.batch.server`` in a session of its own, and hands each one job
at a time. A server forks a child per job, so a job that crashes, hangs or is killed
costs its own child only. ``run(jobs, ...)`` yields results as they finish (not in job
order), pulling jobs from its iterable only when a server is free, so a batch of any
size is read as it runs.

When a server dies (killed, or a bug), the job it was running is reported ``lost`` -
never dropped - and a fresh server takes its place; after too many deaths the engine
stops starting new ones, and when none is left every job not yet run is reported
``lost`` too. Closing the engine (or leaving the ``with``) tells every server to stop;
a server kills the job it is running, removes its scratch directories and exits.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from callgate.batch.schema import BatchError, check_result, error_result
from callgate.batch.sources import PolicySpec
from callgate.errors import CallgateError
from callgate.isolation import wire

#: How long a new server may take to import the runtime and answer ``ready``.
START_TIMEOUT = 60.0
#: How long a server may take to stop (kill its job, remove its directories) when told to.
STOP_TIMEOUT = 10.0
#: Servers that may die in one batch (beyond the first ``workers``) before no more are
#: started: a server only dies when it is killed from outside or has a bug.
EXTRA_DEATHS = 16

WireJob = dict[str, Any]
ModuleSource = Callable[[str], bytes]
PolicySource = Callable[[str], PolicySpec]


class EngineError(CallgateError, RuntimeError):
    """The engine could not start (a server would not come up) or was misused."""


@dataclass
class _Server:
    slot: int
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    job: WireJob | None = None
    sent_at: float = 0.0


class LocalEngine:
    """A pool of ``workers`` fork servers (default: this machine's CPU count).

    ``scratch_root``: where servers make their scratch directories (default: the system
    temporary directory); ``capture``: bytes of stdout and of stderr a result keeps;
    ``file_cap``: bytes of each collected file a result keeps; ``label``: the prefix of
    a result's ``worker`` (the Ray engine sets the node).
    """

    def __init__(self, workers: int | None = None, *, scratch_root: str | None = None,
                 capture: int = 64 * 1024, file_cap: int = 1024 * 1024,
                 label: str = "local", python: str = sys.executable) -> None:
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise BatchError(f"workers must be an int of at least 1, got {workers!r}")
        for name, value in (("capture", capture), ("file_cap", file_cap)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BatchError(f"{name} must be a non-negative int, got {value!r}")
        self.workers = workers
        self.label = label
        self._setup = {"op": "setup", "scratch_root": scratch_root, "capture": capture,
                       "file_cap": file_cap}
        self._python = python
        self._servers: list[_Server] = []
        self._queue: deque[WireJob] = deque()
        self._selector = selectors.DefaultSelector()
        self._deaths = 0
        self._started = False

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> LocalEngine:
        """Start every server and wait until each is ready (idempotent)."""
        if self._started:
            return self
        self._started = True
        spawned = [self._spawn(slot) for slot in range(1, self.workers + 1)]
        try:
            for server in spawned:
                self._handshake(server)
                self._servers.append(server)
                self._selector.register(server.sock, selectors.EVENT_READ, server)
        except BaseException:
            for server in spawned:
                _stop(server)
            self._servers = []
            raise
        return self

    def close(self) -> None:
        """Stop every server: each kills the job it runs and removes its scratch dirs."""
        servers, self._servers = self._servers, []
        self._queue.clear()
        self._started = False
        for server in servers:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(server.sock)
            with contextlib.suppress(OSError):
                wire.send(server.sock, {"op": "close"})
        for server in servers:
            _stop(server)

    def __enter__(self) -> LocalEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def worker_pids(self) -> list[int]:
        """The servers' pids, by slot (for tests and for watching a batch)."""
        return [server.proc.pid for server in self._servers]

    def running(self) -> dict[int, str]:
        """Server pid -> id of the job it runs now."""
        return {s.proc.pid: str(s.job["id"]) for s in self._servers if s.job is not None}

    def _spawn(self, slot: int) -> _Server:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        # The servers import this very callgate, wherever it was imported from.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.Popen(
                [self._python, "-m", "callgate.batch.server", "--sock", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
                start_new_session=True, close_fds=True)
        finally:
            theirs.close()
        server = _Server(slot, proc, ours)
        wire.send(ours, self._setup)
        return server

    def _handshake(self, server: _Server) -> None:
        server.sock.settimeout(START_TIMEOUT)
        try:
            message, fds = wire.recv(server.sock)
        except (OSError, wire.PeerClosed, wire.WireError) as exc:
            raise EngineError(f"batch worker {server.slot} did not start: {exc}") from None
        finally:
            server.sock.settimeout(None)
        for fd in fds:
            os.close(fd)
        if message.get("op") != "ready":
            raise EngineError(f"batch worker {server.slot} answered {message.get('op')!r} "
                              "instead of ready")

    def _replace(self, dead: _Server) -> _Server | None:
        """A fresh server in ``dead``'s slot, or None once too many have died."""
        _stop(dead)
        self._deaths += 1
        if self._deaths > self.workers + EXTRA_DEATHS:
            return None
        try:
            server = self._spawn(dead.slot)
            self._handshake(server)
        except (OSError, EngineError):
            return None
        return server

    # -- running ---------------------------------------------------------------------------

    def run(self, jobs: Iterable[WireJob], modules: ModuleSource, policies: PolicySource
            ) -> Iterator[dict[str, Any]]:
        """Run ``jobs`` (resolved: module digest, policy key, full limits) and yield one
        result per job as each finishes. ``modules(digest)`` and ``policies(key)`` give
        what a server asks for the first time it needs it. Jobs are taken from ``jobs``
        only as servers become free."""
        self.start()
        try:
            yield from self._run(iter(jobs), modules, policies)
        finally:
            if self.busy():  # stopped mid-batch: no job of it may outlive it
                self.close()

    def _run(self, pending: Iterator[WireJob], modules: ModuleSource, policies: PolicySource
             ) -> Iterator[dict[str, Any]]:
        exhausted = False
        while True:
            if not self._servers:  # none left: what was not run is lost, not dropped
                while self._queue:
                    yield self._lost(self._queue.popleft(), "no batch worker left (too many "
                                     "died)")
                for job in pending:
                    yield self._lost(job, "no batch worker left (too many died)")
                return
            while not exhausted and len(self._queue) < self.idle():
                try:
                    self._queue.append(next(pending))
                except StopIteration:
                    exhausted = True
            if exhausted and not self.busy():
                return
            yield from self.poll(modules, policies, timeout=None)

    def submit(self, job: WireJob) -> None:
        """Queue ``job``; :meth:`poll` hands it to the next free server."""
        self.start()
        self._queue.append(job)

    def busy(self) -> int:
        """Jobs queued or running."""
        return len(self._queue) + sum(1 for s in self._servers if s.job is not None)

    def idle(self) -> int:
        """Servers with no job."""
        return sum(1 for s in self._servers if s.job is None)

    def poll(self, modules: ModuleSource, policies: PolicySource,
             timeout: float | None = None) -> list[dict[str, Any]]:
        """Hand queued jobs to free servers, then wait up to ``timeout`` seconds (None: until
        something happens) and return the results that came in (maybe none)."""
        self.start()
        out: list[dict[str, Any]] = []
        self._assign(out)
        if not self._servers:  # none left: what was not run is lost, not dropped
            while self._queue:
                out.append(self._lost(self._queue.popleft(),
                                      "no batch worker left (too many died)"))
            return out
        if not any(s.job is not None for s in self._servers):
            return out
        for key, _ in self._selector.select(timeout):
            out.extend(self._answer(key.data, modules, policies))
        self._assign(out)
        return out

    def _assign(self, out: list[dict[str, Any]]) -> None:
        for server in list(self._servers):
            if server.job is None and self._queue:
                job = self._queue.popleft()
                lost = self._send(server, {"op": "job", "job": job}, job)
                if lost is not None:
                    out.append(lost)
                    self._swap(server)

    def _answer(self, server: _Server, modules: ModuleSource, policies: PolicySource
                ) -> list[dict[str, Any]]:
        job = server.job
        try:
            message, fds = wire.recv(server.sock)
            for fd in fds:
                os.close(fd)
        except (OSError, wire.PeerClosed, wire.WireError) as exc:
            lost = []
            if job is not None:
                lost.append(self._lost(job, f"batch worker {self.label}/{server.slot} died "
                                       f"while running it ({_why(server, exc)})", server))
            self._swap(server)
            return lost
        op = message.get("op")
        if job is not None and op == "need":
            reply: dict[str, Any]
            if "module" in message:
                digest = str(message["module"])
                try:
                    reply = {"op": "module", "digest": digest, "data": modules(digest)}
                except CallgateError as exc:
                    reply = {"op": "module", "digest": digest, "error": str(exc)}
            else:
                reply = {"op": "policy", "spec": policies(str(message["policy"])).to_json()}
            lost_job = self._send(server, reply, job)
            if lost_job is not None:
                self._swap(server)
                return [lost_job]
            return []
        if job is not None and op == "result":
            server.job = None
            try:
                result = check_result(message.get("result"))
            except BatchError as exc:
                result = self._lost(job, f"batch worker sent a malformed result: {exc}", server)
            result["worker"] = f"{self.label}/{server.slot}"
            return [result]
        # Anything else is a broken server: replace it, and its job is lost.
        out = []
        if job is not None:
            out.append(self._lost(job, f"batch worker sent an unexpected {op!r}", server))
        self._swap(server)
        return out

    def _send(self, server: _Server, message: dict[str, Any], job: WireJob
              ) -> dict[str, Any] | None:
        server.job = job
        server.sent_at = time.monotonic()
        try:
            wire.send(server.sock, message)
        except (OSError, wire.WireError) as exc:
            return self._lost(job, f"batch worker {self.label}/{server.slot} could not take "
                              f"it ({exc})", server)
        return None

    def _swap(self, dead: _Server) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(dead.sock)
        index = self._servers.index(dead)
        fresh = self._replace(dead)
        if fresh is None:
            del self._servers[index]
            return
        self._servers[index] = fresh
        self._selector.register(fresh.sock, selectors.EVENT_READ, fresh)

    def _lost(self, job: WireJob, detail: str, server: _Server | None = None
              ) -> dict[str, Any]:
        if server is not None:
            server.job = None
        worker = f"{self.label}/{server.slot}" if server is not None else None
        return error_result(int(job["index"]), str(job["id"]), "lost", detail, job.get("meta"),
                            worker)


def _why(server: _Server, exc: BaseException) -> str:
    code = server.proc.poll()
    if code is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = server.proc.wait(timeout=1.0)
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    if code is not None:
        return f"exited with status {code}"
    return str(exc) or type(exc).__name__


def _stop(server: _Server) -> None:
    """Make sure a server is gone: it exits by itself on ``close`` or EOF (killing its
    job's process first); after a grace period it is killed with its process group - the
    server leads a session of its own, and its job's process is in its group."""
    with contextlib.suppress(OSError):
        server.sock.close()
    try:
        server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
