"""benchmarks/run.py writes a new results file per run; only --record touches the committed one.

The benchmarks themselves are replaced by an empty collection here (their behaviour is
tests/test_benchmarks_smoke.py's business): what is checked is where a run writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import run as bench_run  # noqa: E402


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    committed = tmp_path / "RESULTS.md"
    committed.write_text("committed results\n")
    monkeypatch.setattr(bench_run, "RESULTS", committed)
    monkeypatch.setattr(bench_run, "CHART", tmp_path / "results.png")
    monkeypatch.setattr(bench_run, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(bench_run, "collect", lambda n, names, progress: ([], []))
    return {"committed": committed, "runs": tmp_path / "results"}


def test_a_run_writes_a_new_file_and_leaves_the_committed_one(
        places: dict[str, Path]) -> None:
    assert bench_run.main(["--quick"]) == 0
    assert bench_run.main(["--quick"]) == 0
    runs = sorted(places["runs"].glob("run-*.md"))
    assert len(runs) == 2  # a second run in the same second does not overwrite the first
    assert all("python benchmarks/run.py --quick" in run.read_text() for run in runs)
    assert places["committed"].read_text() == "committed results\n"


def test_record_rewrites_the_committed_results(places: dict[str, Path]) -> None:
    assert bench_run.main(["--record"]) == 0
    assert "python benchmarks/run.py --record" in places["committed"].read_text()
    assert not places["runs"].exists()


@pytest.mark.parametrize("argv", [["--record", "--quick"],
                                  ["--record", "--only", "bench_filter"]])
def test_a_partial_run_cannot_be_recorded(argv: list[str], places: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench_run.main(argv)
    assert exit_.value.code == 2 and "--record" in capsys.readouterr().err
    assert places["committed"].read_text() == "committed results\n"


def test_explicit_paths_win(places: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mine.md"
    assert bench_run.main(["--quick", "--output", str(out)]) == 0
    assert out.is_file() and not places["runs"].exists()
