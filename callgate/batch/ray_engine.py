"""The Ray engine: the local engine's fork-server pool on every node of a Ray cluster.

``pip install 'callgate[ray]'``. One actor per node (:class:`NodePool`, pinned to its node)
owns a :class:`~callgate.batch.local.LocalEngine`: the same fork servers, the same forked
and locked-down child per job, the same results. Ray's own processes - the driver, the
actors - are never locked down; they only move jobs and results. The jobs' processes are.

The driver (:class:`RayEngine`, here) keeps a window of jobs in flight per node and takes
results as they come. A module travels once: the driver puts its bytes in Ray's object
store the first time a job names it, and each node's actor fetches them (once per node)
when one of its servers first asks. Policies travel as text, once per node.

When an actor dies (its node went away, or it was killed), the jobs it held are reported
``lost`` and the rest of the batch goes to the other nodes; with no node left, every job
not yet run is ``lost`` - never dropped.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from callgate.batch.local import LocalEngine
from callgate.batch.schema import BatchError, error_result
from callgate.batch.sources import PolicySpec
from callgate.runtime.backend import TrapHandlers

WireJob = dict[str, Any]
#: Seconds an actor's loop waits for a result before it looks for new jobs again.
_POLL = 0.02
#: Seconds a driver's ``take`` call waits in the actor for at least one result.
_TAKE_WAIT = 1.0


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BatchError("the ray engine needs Ray: pip install 'callgate[ray]'") from None
    return ray


class NodePool:
    """The actor on one node: a local fork-server pool fed from the driver.

    ``submit`` queues jobs (with the object refs of modules this node has not seen, and
    policy specs); a loop thread hands them to the pool and collects results, which
    ``take`` returns. The pool's servers ask for a module by digest; the loop fetches it
    from the object store then, once for this node.
    """

    def __init__(self, workers: int, label: str, capture: int, file_cap: int,
                 scratch_root: str | None) -> None:
        self.engine = LocalEngine(workers, label=label, capture=capture, file_cap=file_cap,
                                  scratch_root=scratch_root)
        self.engine.start()
        self.refs: dict[str, Any] = {}
        self.modules: dict[str, bytes] = {}
        self.policies: dict[str, PolicySpec] = {}
        self.inbox: queue.Queue[WireJob] = queue.Queue()
        self.outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.failure: BaseException | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="callgate-batch-pool",
                                       daemon=True)
        self.thread.start()

    def node(self) -> str:
        return self.engine.label

    def submit(self, jobs: list[WireJob], refs: dict[str, Any],
               policies: list[dict[str, Any]]) -> int:
        self.refs.update(refs)
        for spec in policies:
            parsed = PolicySpec.from_json(spec)
            self.policies[parsed.key] = parsed
        for job in jobs:
            self.inbox.put(job)
        return len(jobs)

    def take(self, wait: float) -> list[dict[str, Any]]:
        """Results that finished: at least one, unless ``wait`` seconds pass first."""
        out: list[dict[str, Any]] = []
        try:
            out.append(self.outbox.get(timeout=wait))
        except queue.Empty:
            if self.failure is not None:
                raise BatchError(f"the node's pool failed: {self.failure}") from None
            return out
        while True:
            try:
                out.append(self.outbox.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.engine.close()

    def _module(self, digest: str) -> bytes:
        data = self.modules.get(digest)
        if data is None:
            ray = _ray()
            data = self.modules[digest] = bytes(ray.get(self.refs[digest]))
        return data

    def _loop(self) -> None:
        try:
            while not self.stopping.is_set():
                while True:
                    try:
                        self.engine.submit(self.inbox.get_nowait())
                    except queue.Empty:
                        break
                if not self.engine.busy():
                    try:  # nothing to do: wait for work
                        self.engine.submit(self.inbox.get(timeout=_POLL))
                    except queue.Empty:
                        continue
                for result in self.engine.poll(self._module, self.policies.__getitem__,
                                               timeout=_POLL):
                    self.outbox.put(result)
        except BaseException as exc:  # reported by take(); the driver marks jobs lost
            self.failure = exc


class RayEngine:
    """Runs resolved jobs on a Ray cluster: one :class:`NodePool` actor per alive node.

    ``workers``: fork servers per node (default: the node's CPUs); ``address``: the
    cluster (default: ``$RAY_ADDRESS``, else a local cluster started here and stopped
    on :meth:`close`); ``init``: more ``ray.init`` keyword arguments when this engine
    starts Ray itself. If Ray is already initialised in this process, that cluster is
    used and left running.
    """

    def __init__(self, workers: int | None = None, *, address: str | None = None,
                 capture: int = 64 * 1024, file_cap: int = 1024 * 1024,
                 scratch_root: str | None = None, init: dict[str, Any] | None = None,
                 window: int = 2) -> None:
        self.workers = workers
        self.address = address
        self.capture = capture
        self.file_cap = file_cap
        self.scratch_root = scratch_root
        self.init = dict(init or {})
        self.window = window
        self.actors: list[Any] = []
        self.sizes: list[int] = []
        self.nodes: list[str] = []
        self._owns_ray = False

    def start(self) -> RayEngine:
        if self.actors:
            return self
        ray = _ray()
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS")
            options = {"include_dashboard": False, "log_to_driver": False, **self.init}
            with TrapHandlers.kept():  # Ray's crash handlers would hide wasmtime's
                ray.init(address=address, **options)
            self._owns_ray = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(NodePool)
        for node in ray.nodes():
            cpus = int(node.get("Resources", {}).get("CPU", 0))
            if not node.get("Alive") or cpus < 1:
                continue
            workers = self.workers or cpus
            label = f"ray/{node.get('NodeManagerAddress', node['NodeID'][:8])}"
            actor = remote.options(
                num_cpus=min(workers, cpus), max_concurrency=4,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
            ).remote(workers, label, self.capture, self.file_cap, self.scratch_root)
            self.actors.append(actor)
            self.sizes.append(workers)
            self.nodes.append(label)
        if not self.actors:
            raise BatchError("the Ray cluster has no alive node with a CPU")
        ray.get([actor.node.remote() for actor in self.actors])  # every pool is up
        return self

    def close(self) -> None:
        actors, self.actors = self.actors, []
        if actors:
            ray = _ray()
            with contextlib.suppress(Exception):
                ray.get([actor.stop.remote() for actor in actors], timeout=30)
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor)
        if self._owns_ray:
            self._owns_ray = False
            with TrapHandlers.kept():  # and shutdown resets them to the default action
                _ray().shutdown()

    def __enter__(self) -> RayEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, jobs: Iterable[WireJob], modules: Callable[[str], bytes],
            policies: Callable[[str], PolicySpec]) -> Iterator[dict[str, Any]]:
        self.start()
        try:
            yield from self._run(iter(jobs), modules, policies)
        except BaseException:
            self.close()  # stopped mid-batch: no job of it may outlive it
            raise

    def _run(self, pending: Iterator[WireJob], modules: Callable[[str], bytes],
             policies: Callable[[str], PolicySpec]) -> Iterator[dict[str, Any]]:
        ray = _ray()
        refs: dict[str, Any] = {}  # digest -> object ref, put once for the whole cluster
        alive = list(range(len(self.actors)))
        held: list[dict[int, WireJob]] = [{} for _ in self.actors]
        sent_modules: list[set[str]] = [set() for _ in self.actors]
        sent_policies: list[set[str]] = [set() for _ in self.actors]
        takes: dict[Any, int] = {}
        exhausted = False
        while True:
            for a in list(alive):
                room = self.window * self.sizes[a] - len(held[a])
                chunk: list[WireJob] = []
                while room > 0 and not exhausted:
                    try:
                        chunk.append(next(pending))
                        room -= 1
                    except StopIteration:
                        exhausted = True
                if not chunk:
                    continue
                new_refs = {}
                for job in chunk:
                    digest = job["module"]
                    if digest not in sent_modules[a]:
                        if digest not in refs:
                            refs[digest] = ray.put(modules(digest))
                        new_refs[digest] = refs[digest]
                        sent_modules[a].add(digest)
                specs = []
                for job in chunk:
                    if job["policy"] not in sent_policies[a]:
                        specs.append(policies(job["policy"]).to_json())
                        sent_policies[a].add(job["policy"])
                for job in chunk:
                    held[a][int(job["index"])] = job
                self.actors[a].submit.remote(chunk, new_refs, specs)
            if not alive:  # no node left: what was not run is lost, not dropped
                for job in pending:
                    yield error_result(int(job["index"]), str(job["id"]), "lost",
                                       "no Ray node left to run it", job.get("meta"))
                return
            if exhausted and not any(held[a] for a in alive):
                return
            for a in alive:
                if held[a] and a not in takes.values():
                    takes[self.actors[a].take.remote(_TAKE_WAIT)] = a
            ready, _ = ray.wait(list(takes), num_returns=1)
            for ref in ready:
                a = takes.pop(ref)
                try:
                    results = ray.get(ref)
                except Exception as exc:  # the actor (or its node) is gone
                    alive.remove(a)
                    for job in held[a].values():
                        yield error_result(int(job["index"]), str(job["id"]), "lost",
                                           f"the Ray node {self.nodes[a]} failed while it "
                                           f"held the job ({type(exc).__name__})",
                                           job.get("meta"), self.nodes[a])
                    held[a].clear()
                    continue
                for result in results:
                    held[a].pop(int(result["index"]), None)
                    yield result
