"""The Ray side of tests/batch/test_ray.py, run as its own process.

Ray's driver starts threads and installs fork and signal hooks in the process that calls
``ray.init``; the test suite forks children from its own process (the kernel tests'
fork oracle), so Ray stays out of it: this script starts a local cluster (2 CPUs), runs
the scenarios and prints their results as one JSON object.

Usage: ``python tests/batch/ray_driver.py TMPDIR`` (modules and policies are written there).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ray

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from batch_helpers import (  # noqa: E402
    GROW_THEN_TRAP_WAT,
    KERNEL_KILLS_GETRANDOM,
    KILL_WRITE_POLICY,
    TRAP_WAT,
    guest,
)

from callgate.batch import Job, run  # noqa: E402
from callgate.batch.ray_engine import RayEngine  # noqa: E402

GRADING = HERE.parents[1] / "examples" / "grading"


def mixed_batch(tmp: Path) -> list[Job]:
    """Every status, hostile grading submissions, collected binary files."""
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
        jobs.append(Job(str(GRADING / "submissions" / "wasm" / f"{name}.wasm"), id=name,
                        stdin=b"3 1 2\n", policy=str(GRADING / "policy.toml"),
                        limits={"fuel": 1_200_000_000, "memory": 32 << 20,
                                "output": 1 << 20}))
    return jobs


def dead_node() -> dict[str, object]:
    """Kill the only node's actor while it holds three sleeping jobs."""
    jobs = [Job(guest("lines"), id="first", argv=("lines", "1"))]
    jobs += [Job(guest("hostile_sleep"), id=f"sleeper{i}", limits={"timeout": 60})
             for i in range(3)]
    engine = RayEngine(2, window=4)
    try:
        results = run(jobs, engine=engine)
        first = next(results)
        ray.kill(engine.actors[0])
        rest = list(results)
    finally:
        engine.close()
    return {"first": first, "rest": rest}


def main() -> None:
    tmp = Path(sys.argv[1])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        jobs = mixed_batch(tmp)
        with RayEngine(2) as engine:
            through_ray = list(run(jobs, engine=engine, base=tmp))
        local = list(run(jobs, workers=2, base=tmp))
        out = {"ids": [job.id for job in jobs], "ray": through_ray, "local": local,
               "dead_node": dead_node()}
    finally:
        ray.shutdown()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
