#!/usr/bin/env python3
"""Grade every submission with ``callgate batch``, then write a scoreboard (CSV and HTML).

Usage: ``python examples/grading/grade.py [--out DIR] [--workers N] [--engine local|ray]``

The assignment (README.md): read integers on stdin, print ``count N``, ``sum S`` and
``sorted`` followed by the numbers in ascending order. Each test case is a ``tests/*.in``
file; its expected answer is computed by :func:`reference` (and kept next to it as
``*.expected`` for people to read; the test suite checks the two agree).

Grading runs in two batches, both through ``callgate batch``:

1. the first test case for every submission;
2. the other test cases for every submission that was not *stopped* in the first - by a
   gate (killed, refused, the kernel filter) or a limit (fuel, deadline, memory, output,
   stack). Hostile code does not get six tries.

A test passes when the run ended ``ok`` and stdout is exactly the expected answer. The
scoreboard gives each submission its score, what stopped it (the gate or limit, from
the result's ``status``, ``gate`` and ``detail``) and one cell per test case.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBMISSIONS = HERE / "submissions" / "wasm"
TESTS = HERE / "tests"
POLICY = HERE / "policy.toml"

#: Limits of every run. Fuel bounds compute exactly (a quadratic sort of 10,000 numbers
#: fits, bubble sort without an early exit does not); deadlines are for what fuel
#: cannot see (sleeping, waiting in a gate) and are far above any honest run's time -
#: and above the time a spinning submission takes to burn its fuel (about 0.1 s of CPU),
#: so on a loaded machine too a spin ends in "fuel", never in a race with the deadline.
FUEL = 1_200_000_000
TIMEOUT = 5.0
BIG_TIMEOUT = 10.0  # the 10,000-number test
MEMORY = "32M"
OUTPUT = "1M"
CAPTURE = "1M"  # stdout kept in a result: the 10,000-number answer is ~140 KB
#: Statuses that stop a submission after the first test case.
STOPPING = {"killed", "kernel", "refused", "fuel", "deadline", "memory", "output", "stack",
            "trap", "crash"}


def reference(text: str) -> str:
    """The expected answer for one input."""
    numbers = sorted(int(word) for word in text.split())
    return f"count {len(numbers)}\nsum {sum(numbers)}\nsorted" + \
        "".join(f" {n}" for n in numbers) + "\n"


def test_cases() -> list[tuple[str, str]]:
    return [(path.stem, path.read_text()) for path in sorted(TESTS.glob("*.in"))]


def submissions() -> list[Path]:
    return sorted(SUBMISSIONS.glob("*.wasm"))


def stopped_by(result: dict[str, Any]) -> str:
    """What stopped a run, in a few words ("" when nothing did)."""
    status = result["status"]
    if status == "killed":
        gate = result["gate"]
        return f"gate {gate['name']} ({gate['action']})"
    if status == "kernel":
        return "kernel seccomp filter (SIGSYS)"
    if status == "refused":
        imports = [line.strip() for line in result["detail"].splitlines() if "import #" in line]
        return "refused at load: " + ("; ".join(imports) or result["detail"].splitlines()[0])
    if status in ("fuel", "deadline", "memory", "output", "stack"):
        return f"limit: {status}"
    if status == "trap":
        return f"trap: {result.get('trap') or 'wasm trap'}"
    if status in ("crash", "lost", "error"):
        return f"{status}: {result['detail']}"
    return ""


@dataclass
class Student:
    name: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    passed: dict[str, bool] = field(default_factory=dict)

    def stops(self) -> list[str]:
        seen: list[str] = []
        for result in self.results.values():
            why = stopped_by(result)
            if why and why not in seen:
                seen.append(why)
        return seen

    def verdict(self, total: int) -> str:
        if self.stops():
            return "stopped"
        return "pass" if sum(self.passed.values()) == total else "fail"


def write_jobs(path: Path, runs: list[tuple[Path, str, str]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for wasm, test, text in runs:
            timeout = BIG_TIMEOUT if len(text) > 10_000 else TIMEOUT
            job = {"id": f"{wasm.stem}/{test}", "module": str(wasm), "argv": [wasm.stem],
                   "stdin": text, "limits": {"timeout": timeout},
                   "meta": {"student": wasm.stem, "test": test}}
            f.write(json.dumps(job) + "\n")


def batch(jobs: Path, results: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """``callgate batch`` over ``jobs``; its results."""
    command = [sys.executable, "-m", "callgate", "batch", str(jobs), "-o", str(results),
               "--policy", str(POLICY), "--fuel", str(FUEL), "--memory", MEMORY,
               "--output-limit", OUTPUT, "--capture", CAPTURE, "--engine", args.engine]
    if args.workers:
        command += ["--workers", str(args.workers)]
    done = subprocess.run(command, check=False)
    if done.returncode not in (0, 1):  # 1: some job lost or unusable (reported below)
        raise SystemExit(f"callgate batch failed with status {done.returncode}")
    return [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]


def grade(args: argparse.Namespace) -> list[Student]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cases = test_cases()
    expected = {name: reference(text) for name, text in cases}
    students = {wasm.stem: Student(wasm.stem) for wasm in submissions()}
    first, rest = cases[0], cases[1:]
    stages = [("stage1", [(wasm, *first) for wasm in submissions()])]
    for stage, runs in stages:
        jobs = out / f"{stage}-jobs.jsonl"
        write_jobs(jobs, runs)
        for result in batch(jobs, out / f"{stage}-results.jsonl", args):
            meta = result["meta"]
            student = students[meta["student"]]
            student.results[meta["test"]] = result
            student.passed[meta["test"]] = (result["status"] == "ok" and
                                            result["stdout"] == expected[meta["test"]])
        if stage == "stage1":
            going_on = [s for s in submissions()
                        if students[s.stem].results[first[0]]["status"] not in STOPPING]
            stages.append(("stage2", [(wasm, name, text) for wasm in going_on
                                      for name, text in rest]))
    return sorted(students.values(), key=lambda s: s.name)


def write_scoreboard(students: list[Student], out: Path) -> None:
    names = [name for name, _ in test_cases()]
    with (out / "scoreboard.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "score", "passed", "tests", "verdict", "stopped_by",
                         *names])
        for s in students:
            writer.writerow([s.name, f"{sum(s.passed.values()) / len(names):.2f}",
                             sum(s.passed.values()), len(names), s.verdict(len(names)),
                             "; ".join(s.stops()), *(_cell(s, n)[0] for n in names)])
    rows = []
    for s in students:
        cells = "".join(
            f'<td class="{_cell(s, n)[0]}" title="{html.escape(_cell(s, n)[1])}">'
            f"{html.escape(_cell(s, n)[0])}</td>" for n in names)
        rows.append(
            f'<tr class="{s.verdict(len(names))}"><th>{html.escape(s.name)}</th>'
            f"<td>{sum(s.passed.values())}/{len(names)}</td>"
            f"<td>{html.escape(s.verdict(len(names)))}</td>"
            f"<td>{html.escape('; '.join(s.stops()))}</td>{cells}</tr>")
    header = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    (out / "scoreboard.html").write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scoreboard: count, sum, sort</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}
td.pass {{ background: #cfc; }} td.fail {{ background: #fdd; }}
td.stopped {{ background: #fc9; }} td.skipped {{ color: #999; }}
tr.stopped th {{ color: #a40; }}
</style></head><body>
<h1>Scoreboard: count, sum, sort</h1>
<p>{len(students)} submissions, {len(names)} test cases, each run by <code>callgate
batch</code> in its own locked-down process. Hover a cell for how its run ended.</p>
<table><tr><th>submission</th><th>score</th><th>verdict</th><th>stopped by</th>{header}</tr>
{chr(10).join(rows)}
</table></body></html>
""", encoding="utf-8")


def _cell(student: Student, test: str) -> tuple[str, str]:
    """(pass | fail | stopped | skipped, how the run ended)."""
    result = student.results.get(test)
    if result is None:
        return "skipped", "not run: the submission was stopped in an earlier test"
    why = stopped_by(result)
    if why:
        return "stopped", why
    if student.passed[test]:
        return "pass", "ok"
    return "fail", f"{result['status']} (exit code {result['exit_code']}): wrong output"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out",
                        help="where jobs, results and the scoreboard go (default: out/)")
    parser.add_argument("--workers", type=int, help="fork servers (default: one per CPU)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    students = grade(args)
    write_scoreboard(students, args.out)
    total = len(test_cases())
    counts = {v: sum(1 for s in students if s.verdict(total) == v)
              for v in ("pass", "fail", "stopped")}
    print(f"graded {len(students)} submissions: {counts['pass']} pass, {counts['fail']} fail, "
          f"{counts['stopped']} stopped; scoreboard: {args.out / 'scoreboard.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
