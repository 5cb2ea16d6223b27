"""The Ray engine on a real local Ray cluster (``ray.init`` with 2 CPUs).

The same batch - hostile jobs included - must give the same results through Ray as
through the local engine, everything compared but timings and the worker's name; and a
node that dies mid-batch loses only the jobs it held, reported ``lost``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from batch_helpers import (
    GROW_THEN_TRAP_WAT,
    KERNEL_KILLS_GETRANDOM,
    KILL_WRITE_POLICY,
    TRAP_WAT,
    guest,
    job_processes,
)
from conftest import require

from callgate.batch import Job, run
from callgate.batch.schema import comparable

GRADING = Path(__file__).resolve().parents[2] / "examples" / "grading" / "submissions" / "wasm"


@pytest.fixture(scope="module")
def ray_cluster():
    require(importlib.util.find_spec("ray") is not None, "ray (pip install 'callgate[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def mixed_batch(tmp: Path) -> list[Job]:
    (tmp / "kill-write.toml").write_text(KILL_WRITE_POLICY)
    (tmp / "kernel.toml").write_text(KERNEL_KILLS_GETRANDOM)
    (tmp / "trap.wat").write_text(TRAP_WAT)
    (tmp / "grow.wat").write_text(GROW_THEN_TRAP_WAT)
    jobs = [Job(guest("lines"), id=f"lines{i}", argv=("lines", str(i))) for i in range(12)]
    jobs += [
        Job(guest("envargs"), id="exit", env={"EXIT_CODE": "7"}),
        Job(guest("lines"), id="killed", argv=("lines", "1"), policy="kill-write.toml"),
        Job(guest("timerand"), id="kernel", policy="kernel.toml"),
        Job(guest("hostile_spin"), id="fuel", limits={"fuel": 1_000_000}),
        Job(guest("hostile_sleep"), id="deadline", limits={"timeout": 0.3}),
        Job(guest("lines"), id="output", argv=("lines", "100000"), limits={"output": 1000}),
        Job(guest("hostile_recursion"), id="stack"),
        Job("trap.wat", id="trap"),
        Job("grow.wat", id="memory", limits={"memory": 1 << 20}),
        Job(guest("hostile_foreign_import"), id="refused"),
        Job(guest("escape_dotdot"), id="dotdot"),
        Job(guest("copyfile"), id="files", argv=("cp", "/in", "/out", "64"),
            files={"in": b"\xffbinary\n"}, collect=("out",)),
        Job("absent.wasm", id="error"),
    ]
    for name in ("evil_read_passwd", "evil_fork", "evil_socket", "evil_membomb",
                 "evil_output_flood", "evil_infinite_loop", "ok_qsort", "wrong_mean_div"):
        jobs.append(Job(str(GRADING / f"{name}.wasm"), id=name, stdin=b"3 1 2\n",
                        policy=str(GRADING.parents[1] / "policy.toml"),
                        limits={"fuel": 1_200_000_000, "memory": 32 << 20,
                                "output": 1 << 20}))
    return jobs


def test_ray_gives_the_local_engines_results(ray_cluster, tmp_path: Path) -> None:
    from callgate.batch.ray_engine import RayEngine

    jobs = mixed_batch(tmp_path)
    with RayEngine(2) as engine:
        through_ray = list(run(jobs, engine=engine, base=tmp_path))
    local = list(run(jobs, workers=2, base=tmp_path))
    assert len(through_ray) == len(local) == len(jobs)
    ray_by_id = {r["id"]: r for r in through_ray}
    local_by_id = {r["id"]: r for r in local}
    assert set(ray_by_id) == set(local_by_id) == {job.id for job in jobs}
    for job_id, result in local_by_id.items():
        assert comparable(ray_by_id[job_id]) == comparable(result), job_id
    statuses = {r["status"] for r in local}
    assert statuses == {"ok", "exit", "killed", "kernel", "fuel", "deadline", "output",
                        "stack", "trap", "memory", "refused", "error"}
    assert all(r["worker"].startswith("ray/") for r in through_ray if r["status"] != "error")


def test_a_node_that_dies_loses_only_the_jobs_it_held(ray_cluster) -> None:
    from callgate.batch.ray_engine import RayEngine

    before = job_processes()
    jobs = [Job(guest("lines"), id="first", argv=("lines", "1"))]
    jobs += [Job(guest("hostile_sleep"), id=f"sleeper{i}", limits={"timeout": 60})
             for i in range(3)]
    engine = RayEngine(2, window=4)
    try:
        results = run(jobs, engine=engine)
        first = next(results)
        assert first["id"] == "first" and first["status"] == "ok"
        ray_cluster.kill(engine.actors[0])  # the only node's actor, with the sleepers
        rest = list(results)
    finally:
        engine.close()
    assert sorted(r["id"] for r in rest) == ["sleeper0", "sleeper1", "sleeper2"]
    assert all(r["status"] == "lost" and "failed while it held the job" in r["detail"]
               for r in rest)
    # The actor's servers saw their socket close and took their jobs' processes with them.
    deadline = time.monotonic() + 30
    while job_processes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job_processes() - before == set()
