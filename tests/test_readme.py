"""The README's first block: the two commands a newcomer runs, checked where a test can.

The block is marked ``sh illustrative`` because a test cannot run it as written: the first
command installs into the reader's environment, and the second *is* the test suite. So:

* the first command's run (after ``pip install . &&``) prints exactly what the README says
  it prints, from the root of the checkout (tests/test_packaging.py runs it again from an
  installed wheel);
* the second command is, character for character, the last line of ``.ci/run``;
* the system packages the README tells a newcomer to install are the ones ``.ci/run``
  installs.

Every other shell block of the README runs in tests/teach/test_tutorial.py.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "teach"))

from console_doc import fences

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
INSTALL = "pip install . && "


def top_commands() -> list[str]:
    first = fences(README)[0]
    assert first.illustrative and first.lang == "sh", "the README starts with the install block"
    return [line for line in first.body if line.strip() and not line.startswith("#")]


def shown_output() -> list[str]:
    """The ```text block after "it prints": what the first command's run prints."""
    blocks = fences(README)
    for before, block in itertools.pairwise(blocks):
        if block.lang == "text" and before.line < block.line:
            prose = README.splitlines()[before.line + len(before.body) + 1:block.line - 1]
            if any("it prints" in line for line in prose):
                return list(block.body)
    raise AssertionError("the README shows no expected output for its first command")


def readme_run_command() -> list[str]:
    first = top_commands()[0]
    assert first.startswith(INSTALL), first
    return shlex.split(first.removeprefix(INSTALL))


def test_two_commands_at_the_top() -> None:
    commands = top_commands()
    assert len(commands) == 2
    assert commands[0].startswith(INSTALL + "callgate ")
    assert commands[1] == "pip install -e '.[test]' && python -m pytest -q"


def test_first_command_prints_what_the_readme_shows() -> None:
    argv = readme_run_command()
    assert argv[0] == "callgate"
    done = subprocess.run([sys.executable, "-m", "callgate", *argv[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shown_output()


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    last = [line for line in ci if line.strip() and not line.startswith("#")][-1]
    assert last == top_commands()[1]


def apt_packages(text: str) -> set[str]:
    """The package names of every ``apt-get install`` in ``text`` (options dropped)."""
    found: set[str] = set()
    joined = text.replace("\\\n", " ")
    for match in re.finditer(r"apt-get install ([^\n;&|#]*)", joined):
        found |= {word for word in match[1].split() if word[0] not in "->"}
    return found


def test_readme_names_the_packages_ci_installs() -> None:
    ci = apt_packages((ROOT / ".ci" / "run").read_text())
    assert ci, ".ci/run installs no packages?"
    assert ci <= apt_packages(README)
    assert "sudo apt-get update && sudo apt-get install" in README
