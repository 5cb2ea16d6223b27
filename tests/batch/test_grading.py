"""examples/grading end to end: build checks, then ``grade.py`` through ``callgate batch``.

Every submission's verdict is pinned: the correct ones pass every test, the wrong ones
lose points, and every hostile one is stopped by the gate or limit the README names.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parents[2]
GRADING = ROOT / "examples" / "grading"

# submission -> (verdict, what stopped it); every submission not listed must pass. Each
# hostile submission has one thing that can stop it: none races two limits (a spin that
# calls a gate burns fuel at the gate's speed, so fuel or the deadline could win).
EXPECTED = {
    "evil_answer_then_spin": ("stopped", "limit: fuel"),
    "evil_dotdot": ("stopped", "gate path_open (KILL_PROCESS)"),
    "evil_env_dump": ("fail", ""),
    "evil_exec": ("stopped", "refused at load: import #0 env.execve: no such gate"),
    "evil_fd_exhaust": ("stopped", "gate path_open (KILL_PROCESS)"),
    "evil_fork": ("stopped", "refused at load: import #0 env.fork: no such gate"),
    "evil_infinite_loop": ("stopped", "limit: fuel"),
    "evil_membomb": ("stopped", "limit: memory"),
    "evil_output_flood": ("stopped", "limit: output"),
    "evil_proc_raise": ("stopped", "gate proc_raise (KILL_PROCESS)"),
    "evil_read_passwd": ("stopped", "gate path_open (KILL_PROCESS)"),
    "evil_send": ("stopped", "gate sock_send (KILL_PROCESS)"),
    "evil_sleep_forever": ("stopped", "limit: deadline"),
    "evil_socket": ("stopped", "gate sock_accept (KILL_PROCESS)"),
    "evil_stack": ("stopped", "limit: stack"),
    "evil_stderr_flood": ("stopped", "limit: output"),
    "evil_write_fd": ("stopped", "gate fd_write (KILL_PROCESS)"),
    "evil_write_file": ("stopped", "gate path_open (KILL_PROCESS)"),
    "wrong_bubble_slow": ("stopped", "limit: fuel"),
    "wrong_first_line_only": ("stopped", "trap: memory_out_of_bounds"),
    "wrong_mean_div": ("stopped", "trap: integer_division_by_zero"),
}


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"grading_{name}", GRADING / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_committed_submissions_match_their_sources() -> None:
    require(shutil.which("clang") is not None and Path("/usr/lib/wasm32-wasi/libc.a").exists(),
            "clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)")
    proc = subprocess.run([sys.executable, str(GRADING / "build.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_source_is_built_and_the_mix_is_as_documented() -> None:
    sources = {p.stem for p in (GRADING / "submissions" / "src").glob("*.c")}
    built = {p.stem for p in (GRADING / "submissions" / "wasm").glob("*.wasm")}
    assert sources == built
    kinds = [name.split("_", 1)[0] for name in sources]
    assert (kinds.count("ok"), kinds.count("wrong"), kinds.count("evil")) == (18, 17, 18)


def test_expected_answers_are_the_reference_answers() -> None:
    grade = load("grade")
    cases = grade.test_cases()
    assert len(cases) == 6
    for name, text in cases:
        assert (GRADING / "tests" / f"{name}.expected").read_text() == grade.reference(text)


@pytest.fixture(scope="module")
def scoreboard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("grading")
    proc = subprocess.run([sys.executable, str(GRADING / "grade.py"), "--out", str(out),
                           "--workers", "2"], capture_output=True, text=True, check=False,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "graded 53 submissions: 18 pass, 15 fail, 20 stopped" in proc.stdout
    return out


def test_every_submission_gets_its_verdict(scoreboard: Path) -> None:
    with (scoreboard / "scoreboard.csv").open() as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    assert len(rows) == 53
    for name, row in rows.items():
        verdict, stopped = EXPECTED.get(name, ("pass" if name.startswith("ok_") else "fail", ""))
        assert (row["verdict"], row["stopped_by"]) == (verdict, stopped), name
        if name.startswith("ok_"):
            assert row["score"] == "1.00"
        elif name.startswith("wrong_"):
            assert row["score"] != "1.00"
        else:
            assert row["score"] == "0.00"


def test_hostile_submissions_get_one_run_and_find_nothing(scoreboard: Path) -> None:
    import json

    first = [json.loads(line) for line in (scoreboard / "stage1-results.jsonl").open()]
    second = [json.loads(line) for line in (scoreboard / "stage2-results.jsonl").open()]
    assert len(first) == 53
    evil_later = {r["meta"]["student"] for r in second if r["id"].startswith("evil_")}
    assert evil_later == {"evil_env_dump"}  # the only one nothing stopped
    by_id = {r["id"]: r for r in first}
    assert by_id["evil_env_dump/1-basic"]["stdout"] == "arg evil_env_dump\n"
    killed = by_id["evil_read_passwd/1-basic"]
    assert killed["first_violation"]["gate"] == "path_open"
    assert killed["stdout"] == ""  # not one byte of /etc/passwd
    assert all(r["status"] not in ("lost", "error", "crash", "kernel") for r in first + second)


def test_the_html_scoreboard_escapes_what_submissions_print(scoreboard: Path) -> None:
    page = (scoreboard / "scoreboard.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<tr class=") == 53
    assert "gate path_open (KILL_PROCESS)" in page
    assert "<script" not in page
