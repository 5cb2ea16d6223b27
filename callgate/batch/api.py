"""``callgate.batch.run``: many jobs, each in its own locked-down process, results streamed.

::

    from callgate.batch import Job, run

    jobs = [Job("sum.wasm", id=f"t{i}", stdin=f"{i} {i}\\n".encode()) for i in range(100)]
    for result in run(jobs, workers=2, limits={"fuel": 10**8, "timeout": 2}):
        print(result["id"], result["status"], result["stdout"])

The coordinator (this module) reads each job's module and policy once, turns every job
into content (a module digest, a policy key, bytes), and feeds an engine - the local
fork-server pool, or one pool per node of a Ray cluster - which yields results as jobs
finish. A job that cannot even be dispatched (a missing module, a bad field) gets an
``error`` result; nothing is ever dropped: one result per job, in completion order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from callgate.batch.schema import (
    DEFAULT_LIMITS,
    BatchError,
    Job,
    JobLine,
    error_result,
    limits_json,
    merged_limits,
)
from callgate.batch.sources import (
    DEFAULT_POLICY,
    DIGEST,
    Modules,
    ModuleStore,
    Policies,
    PolicySpec,
)
from callgate.runtime.limits import Limits

WireJob = dict[str, Any]


class Engine(Protocol):
    """What runs resolved jobs: the local pool, or the Ray engine."""

    def run(self, jobs: Iterable[WireJob], modules: Callable[[str], bytes],
            policies: Callable[[str], PolicySpec]) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class Batch:
    """A batch's defaults and the coordinator's state (modules and policies read once).

    ``base``: the directory relative module and policy paths are read from;
    ``modules``: a module store directory (jobs naming ``sha256:HEX``); ``policy``: the
    policy of jobs that name none; ``limits``: the batch's limits (a :class:`Limits`, or
    a mapping of the fields to change from :data:`~callgate.batch.schema.DEFAULT_LIMITS`).
    """

    def __init__(self, *, base: str | os.PathLike[str] = ".",
                 modules: str | os.PathLike[str] | ModuleStore | None = None,
                 policy: str | None = None, limits: Limits | Mapping[str, Any] | None = None
                 ) -> None:
        self.base = Path(base)
        store = modules if isinstance(modules, ModuleStore) or modules is None \
            else ModuleStore(modules)
        self.modules = Modules(self.base, store)
        self.policies = Policies(self.base)
        self.policy = self.policies.resolve(policy or DEFAULT_POLICY)
        if limits is None:
            self.limits = DEFAULT_LIMITS
        elif isinstance(limits, Limits):
            self.limits = merged_limits(limits, {})
        else:
            self.limits = merged_limits(DEFAULT_LIMITS, limits)
        self._by_key: dict[str, PolicySpec] = {self.policy.key: self.policy}
        self._ids: set[str] = set()

    def policy_spec(self, key: str) -> PolicySpec:
        return self._by_key[key]

    def resolve(self, line: JobLine) -> WireJob:
        """The job as a worker takes it, or :class:`BatchError` (its result is ``error``)."""
        job = line.job
        if job is None:
            raise BatchError(line.error or "unusable job")
        job_id = line.job_id
        if job_id in self._ids:
            raise BatchError(f"duplicate job id {job_id!r}")
        self._ids.add(job_id)
        digest = self.modules.resolve(job.module)
        spec = self.policy if job.policy is None else self.policies.resolve(job.policy)
        self._by_key.setdefault(spec.key, spec)
        limits = merged_limits(self.limits, job.limits)
        argv = list(job.argv) if job.argv is not None else [_program_name(job.module)]
        return {"index": line.index, "id": job_id, "meta": job.meta, "module": digest,
                "policy": spec.key, "argv": argv, "env": dict(job.env), "stdin": job.stdin,
                "files": dict(job.files), "collect": list(job.collect),
                "limits": limits_json(limits)}


def _program_name(module: str) -> str:
    if DIGEST.match(module):
        return "module"
    name = os.path.basename(module)
    return name[:-5] if name.endswith(".wasm") else name


def as_lines(jobs: Iterable[Job | Mapping[str, Any] | JobLine]) -> Iterator[JobLine]:
    """Number jobs given as :class:`Job`, JSON objects or :class:`JobLine`."""
    for index, item in enumerate(jobs):
        if isinstance(item, JobLine):
            yield item
        elif isinstance(item, Job):
            yield JobLine(index, item)
        else:
            try:
                yield JobLine(index, Job.from_json(dict(item)))
            except (BatchError, TypeError, ValueError) as exc:
                given = item.get("id") if isinstance(item, Mapping) else None
                yield JobLine(index, None, str(exc), given if isinstance(given, str) else None)


def run(jobs: Iterable[Job | Mapping[str, Any] | JobLine], *, workers: int | None = None,
        engine: str | Engine = "local", policy: str | None = None,
        limits: Limits | Mapping[str, Any] | None = None,
        base: str | os.PathLike[str] = ".",
        modules: str | os.PathLike[str] | ModuleStore | None = None,
        capture: int = 64 * 1024, file_cap: int = 1024 * 1024,
        scratch_root: str | None = None, ray_address: str | None = None,
        ) -> Generator[dict[str, Any], None, None]:
    """Run ``jobs`` and yield one result (a dict, docs/batch.md) per job as each finishes.

    ``engine``: ``"local"`` (a pool of ``workers`` fork servers here, default one per
    CPU), ``"ray"`` (one such pool per node of the Ray cluster at ``ray_address``, or a
    local one; ``workers`` per node) or an engine object. ``policy``, ``limits``,
    ``base`` and ``modules`` are the batch's (see :class:`Batch`); ``capture`` bytes of
    stdout and of stderr and ``file_cap`` bytes of each collected file are kept.

    Close the generator (or break out of a ``for`` over it) to stop: running jobs are
    killed, their scratch directories removed, and the results already yielded stand.
    An engine object passed in is left running, for the next batch; close it yourself.
    """
    batch = Batch(base=base, modules=modules, policy=policy, limits=limits)
    runner = make_engine(engine, workers=workers, capture=capture, file_cap=file_cap,
                         scratch_root=scratch_root, ray_address=ray_address)
    early: deque[dict[str, Any]] = deque()

    def resolved() -> Iterator[WireJob]:
        for line in as_lines(jobs):
            try:
                yield batch.resolve(line)
            except BatchError as exc:
                meta = line.job.meta if line.job is not None else None
                early.append(error_result(line.index, line.job_id, "error", str(exc), meta))

    try:
        for result in runner.run(resolved(), batch.modules.get, batch.policy_spec):
            while early:
                yield early.popleft()
            yield result
        while early:
            yield early.popleft()
    finally:
        if runner is not engine:  # an engine passed in stays its owner's to close
            runner.close()


def make_engine(engine: str | Engine, *, workers: int | None, capture: int, file_cap: int,
                scratch_root: str | None, ray_address: str | None) -> Engine:
    if not isinstance(engine, str):
        return engine
    if engine == "local":
        from callgate.batch.local import LocalEngine

        return LocalEngine(workers, capture=capture, file_cap=file_cap,
                           scratch_root=scratch_root)
    if engine == "ray":
        from callgate.batch.ray_engine import RayEngine

        return RayEngine(workers, address=ray_address, capture=capture, file_cap=file_cap,
                         scratch_root=scratch_root)
    raise BatchError(f"unknown engine {engine!r} (local or ray)")
