"""The local engine, for real: fork servers, a forked and locked-down child per job.

Every ending a job can have, with a real guest; scratch directories that hold each job
in and are gone afterwards; a worker killed mid-batch, a job stopped in its tracks, a
batch abandoned half way - none of which may lose or mix up another job's result.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from batch_helpers import (
    GROW_THEN_TRAP_WAT,
    KERNEL_KILLS_GETRANDOM,
    KILL_WRITE_POLICY,
    TRAP_WAT,
    children_of,
    guest,
    job_processes,
)

from callgate.batch import Job, run
from callgate.batch.api import Batch, as_lines
from callgate.batch.local import LocalEngine
from callgate.batch.server import hard_deadline


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("scratch")
    with LocalEngine(2, scratch_root=str(root)) as pool:
        pool.scratch = root  # type: ignore[attr-defined]
        yield pool
    assert os.listdir(root) == [], "servers left scratch directories behind"


def by_id(results: list[dict]) -> dict[str, dict]:
    out = {r["id"]: r for r in results}
    assert len(out) == len(results), "a job got two results"
    return out


def test_every_ending_is_reported_with_what_stopped_it(engine, tmp_path: Path) -> None:
    (tmp_path / "kill-write.toml").write_text(KILL_WRITE_POLICY)
    (tmp_path / "kernel.toml").write_text(KERNEL_KILLS_GETRANDOM)
    (tmp_path / "trap.wat").write_text(TRAP_WAT)
    (tmp_path / "grow.wat").write_text(GROW_THEN_TRAP_WAT)
    (tmp_path / "junk.wasm").write_bytes(b"\0asm\1\0\0\0\x99garbage")
    jobs = [
        Job(guest("lines"), id="ok", argv=("lines", "3")),
        Job(guest("envargs"), id="exit", env={"EXIT_CODE": "3"}),
        Job(guest("lines"), id="killed", argv=("lines", "1"), policy="kill-write.toml"),
        Job(guest("timerand"), id="kernel", policy="kernel.toml"),
        Job(guest("hostile_spin"), id="fuel", limits={"fuel": 1_000_000}),
        Job(guest("hostile_sleep"), id="deadline", limits={"timeout": 0.3}),
        Job(guest("lines"), id="output", argv=("lines", "100000"), limits={"output": 1000}),
        Job(guest("hostile_recursion"), id="stack"),
        Job("trap.wat", id="trap"),
        Job("grow.wat", id="memory", limits={"memory": 1 << 20}),
        Job(guest("hostile_foreign_import"), id="refused"),
        Job("junk.wasm", id="invalid"),
        Job("absent.wasm", id="error"),
    ]
    got = by_id(list(run(jobs, engine=engine, base=tmp_path)))
    assert {k: r["status"] for k, r in got.items()} == {
        "ok": "ok", "exit": "exit", "killed": "killed", "kernel": "kernel", "fuel": "fuel",
        "deadline": "deadline", "output": "output", "stack": "stack", "trap": "trap",
        "memory": "memory", "refused": "refused", "invalid": "refused", "error": "error"}
    assert got["ok"]["stdout"] == "line 1\nline 2\nline 3\n" and got["ok"]["exit_code"] == 0
    assert got["ok"]["counters"]["fd_write"] == {"allow": got["ok"]["counters"]["fd_write"]
                                                 ["allow"]}
    assert got["exit"]["exit_code"] == 3
    killed = got["killed"]
    assert killed["gate"] == {"name": "fd_write", "number": killed["gate"]["number"],
                              "action": "KILL_PROCESS"}
    assert killed["first_violation"]["gate"] == "fd_write"
    assert killed["audit"]["by_gate"] == {"fd_write": {"KILL_PROCESS": 1}}
    assert got["kernel"]["signal"] == signal.SIGSYS
    assert got["output"]["stdout_bytes"] <= 1000
    assert got["memory"]["memory_bytes"] == 1 << 20 and got["memory"]["trap"]
    assert "env.system" in got["refused"]["detail"]
    assert "cannot read module" in got["error"]["detail"]
    for result in got.values():
        assert result["time"]["wall_s"] >= 0 and result["worker"] in (None, "local/1",
                                                                      "local/2")


def test_nothing_a_job_does_reaches_another_or_outlives_it(engine, tmp_path: Path) -> None:
    scratch: Path = engine.scratch
    # A job's scratch directory is made in its server's: "../secret" of every job.
    planted = []
    for server_dir in scratch.iterdir():
        (server_dir / "outside").mkdir()
        for secret in (server_dir / "secret", server_dir / "outside" / "secret"):
            secret.write_text("the host's\n")
            planted.append(secret)
    assert len(planted) == 4  # two servers
    try:
        jobs = [
            Job(guest("escape_dotdot"), id="dotdot"),
            Job(guest("copyfile"), id="writer", argv=("cp", "/in", "/left-behind", "64"),
                files={"in": b"mine\n"}),
            Job(guest("fsops"), id="fsops", argv=("fsops", "/"), collect=("a/g", "a/s")),
        ]
        first = by_id(list(run(jobs, engine=engine)))
        # The next jobs, on the same servers, find none of it.
        later = [Job(guest("cat"), id=f"reader{i}", argv=("cat", "/left-behind"))
                 for i in range(4)]
        second = by_id(list(run(later, engine=engine)))
        assert all(secret.read_text() == "the host's\n" for secret in planted)
    finally:
        for secret in planted:
            secret.unlink()
        for server_dir in scratch.iterdir():
            (server_dir / "outside").rmdir()
    dotdot = first["dotdot"]
    assert dotdot["status"] == "ok"
    attempts = [line for line in dotdot["stdout"].splitlines() if line.startswith("open ")]
    assert attempts and all(not line.endswith(" 0") for line in attempts), dotdot["stdout"]
    assert first["writer"]["status"] == "ok"
    files = first["fsops"]["files"]
    assert files["a/s"] is None  # a symlink the job made is never followed
    assert files["a/g"] is not None and files["a/g"]["size"] == len(
        _decode(files["a/g"]["data"]))
    for result in second.values():
        assert result["status"] == "exit" and result["exit_code"] != 0
    # Each server's own directory is all that is left between jobs: no job's scratch.
    leftovers = [p for d in scratch.iterdir() if d.is_dir() for p in d.iterdir()]
    assert leftovers == []


def _decode(value: object) -> bytes:
    return value.encode() if isinstance(value, str) else b""


def test_a_module_goes_to_each_worker_once(engine, tmp_path: Path) -> None:
    batch = Batch(base=tmp_path)
    asked: list[str] = []

    def modules(digest: str) -> bytes:
        asked.append(digest)
        return batch.modules.get(digest)

    lines = list(as_lines(Job(guest("lines"), id=f"j{i}", argv=("l", "1")) for i in range(12)))
    wire_jobs = [batch.resolve(line) for line in lines]
    fresh = LocalEngine(2)
    with fresh:
        results = list(fresh.run(wire_jobs, modules, batch.policy_spec))
    assert sorted(r["index"] for r in results) == list(range(12))
    assert all(r["status"] == "ok" for r in results)
    assert len(asked) <= 2 and len(set(asked)) == 1


def test_a_killed_worker_loses_only_the_job_it_was_running(tmp_path: Path) -> None:
    before = job_processes()
    jobs = [Job(guest("hostile_sleep"), id="victim", limits={"timeout": 60})]
    jobs += [Job(guest("lines"), id=f"j{i}", argv=("lines", "2")) for i in range(30)]
    pool = LocalEngine(2)
    killed: list[int] = []

    def kill_the_victims_server() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for pid, job_id in pool.running().items():
                if job_id == "victim":
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.01)

    with pool:
        killer = threading.Thread(target=kill_the_victims_server)
        killer.start()
        got = by_id(list(run(jobs, engine=pool)))
        killer.join()
        assert killed and killed[0] not in pool.worker_pids()  # replaced
        assert len(pool.worker_pids()) == 2
    assert set(got) == {"victim", *(f"j{i}" for i in range(30))}
    assert got["victim"]["status"] == "lost"
    assert "died while running it (killed by signal 9)" in got["victim"]["detail"]
    assert all(got[f"j{i}"]["status"] == "ok" for i in range(30))
    assert job_processes() - before == set()  # the victim's child died with its server


def test_the_worker_kills_a_job_that_outlives_its_deadline(tmp_path: Path) -> None:
    """A job's process that stops answering (here: stopped with SIGSTOP, so neither its
    epoch deadline nor anything else runs in it) is killed by its server at the hard
    deadline, and reported as a deadline."""
    timeout = 2.0
    pool = LocalEngine(1)
    stopped: list[float] = []
    with pool:
        server = pool.worker_pids()[0]

        def stop_the_job() -> None:
            until = time.monotonic() + 30
            while time.monotonic() < until:
                for pid in children_of(server):
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(time.monotonic())
                    return
                time.sleep(0.001)

        stopper = threading.Thread(target=stop_the_job)
        started = time.monotonic()
        stopper.start()
        [result] = run([Job(guest("hostile_sleep"), id="stuck",
                            limits={"timeout": timeout})], engine=pool)
        stopper.join()
    assert stopped, "the job's process never appeared"
    # Stopped before its own deadline could pass, the job can only have been ended by
    # the server; anything else is a box so loaded the test proves nothing.
    assert stopped[0] - started < timeout, "the job was stopped too late to tell"
    assert result["status"] == "deadline"
    assert result["signal"] == signal.SIGKILL
    assert f"killed by the worker {hard_deadline(timeout):g} s after it started" in \
        result["detail"]


def test_abandoning_a_batch_kills_its_jobs_and_keeps_what_finished(tmp_path: Path) -> None:
    before = job_processes()
    root = tmp_path / "scratch"
    root.mkdir()
    jobs = [Job(guest("lines"), id="quick", argv=("lines", "1"))]
    jobs += [Job(guest("hostile_sleep"), id=f"sleeper{i}", limits={"timeout": 60})
             for i in range(4)]
    results = run(jobs, workers=2, scratch_root=str(root))
    first = next(results)
    assert first["id"] == "quick" and first["status"] == "ok"
    results.close()  # as Ctrl-C does: the sleepers are running now
    assert job_processes() - before == set()
    assert os.listdir(root) == []
