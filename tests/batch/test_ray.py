"""The Ray engine on a real local Ray cluster (``ray.init`` with 2 CPUs).

The same batch - hostile jobs included - must give the same results through Ray as
through the local engine, everything compared but timings and the worker's name; and a
node that dies mid-batch loses only the jobs it held, reported ``lost``.

The cluster is driven from a process of its own (``ray_driver.py``): Ray's driver leaves
threads and fork hooks behind in the process that starts it, and this one forks.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import job_processes
from conftest import require

from callgate.batch.schema import comparable

DRIVER = Path(__file__).resolve().parent / "ray_driver.py"


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require(importlib.util.find_spec("ray") is not None, "ray (pip install 'callgate[ray]')")
    before = job_processes()
    tmp = tmp_path_factory.mktemp("ray")
    done = subprocess.run([sys.executable, str(DRIVER), str(tmp)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    out: dict[str, Any] = json.loads(done.stdout)
    until = time.monotonic() + 10
    while job_processes() - before and time.monotonic() < until:
        time.sleep(0.1)
    out["left_behind"] = sorted(job_processes() - before)
    return out


def test_ray_gives_the_local_engines_results(driven: dict[str, Any]) -> None:
    through_ray, local = driven["ray"], driven["local"]
    assert len(through_ray) == len(local) == len(driven["ids"])
    ray_by_id = {r["id"]: r for r in through_ray}
    local_by_id = {r["id"]: r for r in local}
    assert set(ray_by_id) == set(local_by_id) == set(driven["ids"])
    for job_id, result in local_by_id.items():
        assert comparable(ray_by_id[job_id]) == comparable(result), job_id
    assert {r["status"] for r in local} == {
        "ok", "exit", "killed", "kernel", "fuel", "deadline", "output", "stack", "trap",
        "memory", "refused", "error"}
    assert all(r["worker"].startswith("ray/") for r in through_ray if r["status"] != "error")
    assert all(r["worker"].startswith("local/") for r in local if r["status"] != "error")
    assert ray_by_id["files"]["files"] == {"out": {"size": 8, "data": {"base64": "/2JpbmFyeQo="}}}


def test_a_node_that_dies_loses_only_the_jobs_it_held(driven: dict[str, Any]) -> None:
    dead = driven["dead_node"]
    assert dead["first"]["id"] == "first" and dead["first"]["status"] == "ok"
    rest = dead["rest"]
    assert sorted(r["id"] for r in rest) == ["sleeper0", "sleeper1", "sleeper2"]
    assert all(r["status"] == "lost" and "failed while it held the job" in r["detail"]
               for r in rest)
    # The dead actor's servers saw their socket close and took their jobs with them.
    assert driven["left_behind"] == []
