"""``callgate batch`` from the command line: files in and out, silence off a terminal, a
progress line on one, Ctrl-C that keeps what finished, and ``--resume`` for the rest."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from batch_helpers import guest, job_processes


def assert_all_gone(before: set[int], patience: float = 3.0) -> None:
    """No server or job process outlives the batch (a process tearing down a wasm runtime
    can take a moment to be gone: give it ``patience`` seconds)."""
    until = time.monotonic() + patience
    while job_processes() - before and time.monotonic() < until:
        time.sleep(0.05)
    left = job_processes() - before
    assert left == set(), {pid: describe(pid) for pid in left}


def describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return f"state {fields['State'].strip()}, parent {fields['PPid'].strip()}"
    except OSError:
        return "gone"


def callgate(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callgate", *args], capture_output=True,
                          text=True, timeout=300, check=False, **kwargs)


def write_jobs(path: Path, jobs: list[dict]) -> None:
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs))


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_jobs_file_gives_one_result_line_per_job_and_nothing_on_stderr(tmp_path: Path
                                                                         ) -> None:
    shutil.copy(guest("lines"), tmp_path / "lines.wasm")
    jobs = [{"id": f"j{i}", "module": "lines.wasm", "argv": ["lines", str(i)]}
            for i in range(6)]
    write_jobs(tmp_path / "jobs.jsonl", jobs)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = callgate("batch", str(tmp_path / "jobs.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                    "--workers", "2", "--fuel", "100000000", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress line
    results = {r["id"]: r for r in read_results(tmp_path / "out.jsonl")}
    assert sorted(results) == [f"j{i}" for i in range(6)]
    assert results["j2"]["stdout"] == "line 1\nline 2\n"
    assert all(r["schema"] == 1 and r["status"] == "ok" for r in results.values())


def test_unusable_jobs_are_results_too_and_make_the_status_1(tmp_path: Path) -> None:
    (tmp_path / "jobs.jsonl").write_text(
        json.dumps({"id": "good", "module": guest("lines"), "argv": ["l", "1"]}) + "\n"
        "{not json\n" + json.dumps({"id": "bad", "module": guest("lines"), "limits":
                                    {"fuel": -1}}) + "\n")
    done = callgate("batch", str(tmp_path / "jobs.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 1
    assert "2 job(s) error" in done.stderr
    results = {r["id"]: r for r in read_results(tmp_path / "out.jsonl")}
    assert results["good"]["status"] == "ok"
    assert results["bad"]["status"] == "error" and "Limits.fuel" in results["bad"]["detail"]
    assert results["1"]["status"] == "error" and "not JSON" in results["1"]["detail"]


def test_usage_errors_are_one_line_and_status_2(tmp_path: Path) -> None:
    done = callgate("batch", str(tmp_path / "absent.jsonl"), "-o", str(tmp_path / "o"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "cannot read jobs file" in done.stderr
    (tmp_path / "jobs.jsonl").write_text("")
    done = callgate("batch", str(tmp_path / "jobs.jsonl"), "-o", str(tmp_path / "o"),
                    "--workers", "0")
    assert done.returncode == 2 and "not a positive integer" in done.stderr


def test_a_progress_line_on_a_terminal(tmp_path: Path) -> None:
    write_jobs(tmp_path / "jobs.jsonl", [{"module": guest("lines"), "argv": ["l", "1"]}] * 3)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "callgate", "batch",
                             str(tmp_path / "jobs.jsonl"), "-o", str(tmp_path / "out.jsonl")],
                            stderr=follower, stdout=subprocess.DEVNULL)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 4096) if ready else b""
        except OSError:  # EIO: the process closed the terminal
            chunk = b""
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    assert b"\rcallgate batch: 3/3 done" in seen and b"ok 3" in seen


def test_ctrl_c_keeps_the_finished_results_and_resume_runs_the_rest(tmp_path: Path) -> None:
    before = job_processes()
    jobs = [{"id": "quick0", "module": guest("lines"), "argv": ["l", "1"]},
            {"id": "quick1", "module": guest("lines"), "argv": ["l", "1"]}]
    # The sleepers take the batch's deadline: 30 s when interrupted (a job process that
    # outlived the batch would still be there), 1 s when resumed.
    jobs += [{"id": f"sleeper{i}", "module": guest("hostile_sleep")} for i in range(2)]
    jobs += [{"id": f"later{i}", "module": guest("lines"), "argv": ["l", "2"]}
             for i in range(4)]
    write_jobs(tmp_path / "jobs.jsonl", jobs)
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "callgate", "batch", str(tmp_path / "jobs.jsonl"),
               "-o", str(out), "--workers", "2"]
    proc = subprocess.Popen([*command, "--timeout", "30"], stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a shell's job
    deadline = time.monotonic() + 60
    while (not out.exists() or out.read_text().count("\n") < 2) and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C at the terminal sends
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    kept = read_results(out)  # every line whole, each job at most once
    assert 2 <= len(kept) < len(jobs)
    assert len({r["id"] for r in kept}) == len(kept)
    assert_all_gone(before)

    resumed = subprocess.run([*command, "--resume", "--timeout", "1"], capture_output=True,
                             text=True,
                             timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    final = read_results(out)
    assert sorted(r["id"] for r in final) == sorted(job["id"] for job in jobs)
    assert final[:len(kept)] == kept  # appended after what was kept
