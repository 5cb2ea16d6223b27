"""A batch of 1,000 small jobs, one in ten hostile, on the local pool: every job gets exactly
one result, and each hostile one the ending that stopped it."""

from __future__ import annotations

from pathlib import Path

from batch_helpers import GROW_THEN_TRAP_WAT, KILL_WRITE_POLICY, TRAP_WAT, guest

from callgate.batch import Job, run

# (job id prefix, how many, the job, its status)
MIX = [
    ("killed", 20, dict(module=guest("lines"), argv=("l", "1"), policy="kill-write.toml"),
     "killed"),
    ("fuel", 20, dict(module=guest("hostile_spin"), limits={"fuel": 100_000}), "fuel"),
    ("refused", 20, dict(module=guest("hostile_foreign_import")), "refused"),
    ("trap", 10, dict(module="trap.wat"), "trap"),
    ("memory", 10, dict(module="grow.wat", limits={"memory": 1 << 20}), "memory"),
    ("output", 10, dict(module=guest("lines"), argv=("l", "1000"), limits={"output": 100}),
     "output"),
    ("stack", 5, dict(module=guest("hostile_recursion")), "stack"),
    ("deadline", 2, dict(module=guest("hostile_sleep"), limits={"timeout": 0.2}), "deadline"),
    ("exit", 3, dict(module=guest("envargs"), env={"EXIT_CODE": "9"}), "exit"),
]


def test_a_thousand_jobs_one_result_each(tmp_path: Path) -> None:
    (tmp_path / "kill-write.toml").write_text(KILL_WRITE_POLICY)
    (tmp_path / "trap.wat").write_text(TRAP_WAT)
    (tmp_path / "grow.wat").write_text(GROW_THEN_TRAP_WAT)
    jobs, expected = [], {}
    for prefix, count, fields, status in MIX:
        for i in range(count):
            jobs.append(Job(id=f"{prefix}{i}", **fields))  # type: ignore[arg-type]
            expected[f"{prefix}{i}"] = status
    while len(jobs) < 1000:
        job_id = f"ok{len(jobs)}"
        jobs.append(Job(guest("lines"), id=job_id, argv=("lines", "2")))
        expected[job_id] = "ok"
    # Interleaved, as a real batch would come: hostile jobs among the others.
    jobs = jobs[::2] + jobs[1::2]
    results = list(run(jobs, workers=2, base=tmp_path))
    assert len(results) == 1000
    assert sorted(r["index"] for r in results) == list(range(1000))
    got = {r["id"]: r["status"] for r in results}
    assert got == expected
    assert all(r["stdout"] == "line 1\nline 2\n" for r in results if r["id"].startswith("ok"))
