"""docs/tutorial.md is an acceptance test: every command in it runs, and prints what it shows.

So is every other page of docs/ and the README (:data:`RUN_PAGES`): each ```console
session's commands print what the page shows, and each ```sh block's commands succeed,
unless the block is marked ```sh illustrative (tests/teach/console_doc.py states the
convention; :func:`test_every_shell_block_is_run` holds every page to it). Each page gets
its own session; the checks on the tutorial's shape apply to the tutorial only. The
README's illustrative install block is checked where it can be: tests/test_readme.py.

The tutorial is parsed into steps (tests/teach/console_doc.py states the convention). A
reader starts at the root of a checkout; the session here starts in a scratch directory
whose ``callgate``, ``policies``, ``docs``, ``examples`` and ``tests`` are links to this
checkout's and whose ``guests`` and ``benchmarks`` are copies (their commands write into
them), so nothing a page does can write into the repository. ``callgate`` and ``python``
on PATH are this interpreter. Kernel filters are installed only by the commands' own processes
(``callgate run --kernel``, the tutorial's scripts), never by pytest's.

One test per step, named by its line (``test_step[L0123-callgate-run-...]``). The steps run
in document order, once, the first time any of them is asked for; selecting one step runs
every step before it first, because the tutorial's state builds up.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import require
from console_doc import (
    DocFormatError,
    Outcome,
    ShellSession,
    Step,
    explain_mismatch,
    fences,
    output_matches,
    parse,
    session_steps,
    unrun_shell_blocks,
)

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
STEP_TIMEOUT = 30.0  # seconds; the slowest step takes about one
# Programs some steps need beyond Python and the shell's basics, found by what the command
# mentions: (pattern, program, what to install). Such a step skips without its program,
# and fails under CI=true (conftest.require).
STEP_PROGRAMS = ((re.compile(r"\.svg\b"), "dot", "graphviz (dot), for SVG graphs"),
                 (re.compile(r"\bclang\b|guests/build\.py"), "clang",
                  "clang (with wasi-libc), to build guests"))
# Pages whose steps need root: kernel-api.md drops a child to `nobody` and runs a setuid
# copy of id(1) to show why NO_NEW_PRIVS exists. They skip as anyone else (fail in CI).
ROOT_PAGES = frozenset({"docs/kernel-api.md"})

# Each topic the tutorial must teach (issue 8), as a heading.
REQUIRED_HEADINGS = (
    "## The syscall boundary",
    "## An allowlist",
    "## Filters up close: asm, disasm, emu",
    "## Explaining a decision",
    "## EPERM or ENOSYS: how a program reads a denial",
    "## TRAP: asking a broker",
    "## Kill: an intrusion signal",
    "## The kernel layer",
    "## W^X",
    "## What a filter cannot see",
    "## Learning a policy",
)

# Pages whose sessions a test of their own runs (a real program, a long build).
RUN_ELSEWHERE = {
    "docs/recipes/sandboxed-python.md": "tests/programs/test_sandboxed_python_recipe.py",
}
# Every page a reader may paste from: the README and all of docs/, relative to the root.
ALL_PAGES = ("README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")))
# The pages run here, each in a fresh scratch checkout.
RUN_PAGES = tuple(page for page in ALL_PAGES if page not in RUN_ELSEWHERE)
PAGE_STEPS: dict[str, list[Step]] = {page: parse((ROOT / page).read_text()) for page in RUN_PAGES}
STEPS = PAGE_STEPS["docs/tutorial.md"]
ALL_STEPS = [(page, index) for page in RUN_PAGES for index in range(len(PAGE_STEPS[page]))]
# Checkout folders a page's commands write into: each session gets its own copy.
COPIED = ("guests", "benchmarks")
LINKED = ("callgate", "policies", "docs", "examples", "tests")  # what benchmarks read


def page_id(page: str) -> str:
    return Path(page).stem


class TutorialRun:
    """Runs one page's steps in order on first demand and remembers each outcome."""

    def __init__(self, steps: list[Step], scratch: Path) -> None:
        checkout = scratch / "checkout"
        checkout.mkdir()
        for name in LINKED:
            (checkout / name).symlink_to(ROOT / name)
        for name in COPIED:
            shutil.copytree(ROOT / name, checkout / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "results"))
        bin_dir = scratch / "bin"
        bin_dir.mkdir()
        shims = {"callgate": f'exec "{sys.executable}" -m callgate "$@"'}
        # `python` is this interpreter as the reader's activated venv has it: its own bin
        # directory on PATH. A link to sys.executable elsewhere would start Python outside
        # its venv (the venv is found next to the path it was started by), without its
        # packages.
        env_bin = Path(sys.executable).parent  # not resolved: that is the venv's
        python = env_bin / "python"
        if not (python.exists() and os.path.samefile(python, sys.executable)):
            shims["python"] = f'exec "{sys.executable}" "$@"'
        for name, command in shims.items():
            (bin_dir / name).write_text(f"#!/bin/sh\n{command}\n")
            (bin_dir / name).chmod(0o755)
        tmp = scratch / "tmp"  # where the tutorial's `mktemp -d` lands
        tmp.mkdir()
        env = {
            "PATH": os.pathsep.join(
                [str(bin_dir), str(env_bin), os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(scratch),
            "TMPDIR": str(tmp),
            "LC_ALL": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TERM": "dumb",
        }
        self.steps = steps
        self.shell = ShellSession(checkout, env, scratch)
        self.outcomes: list[Outcome | BaseException] = []

    def outcome(self, index: int) -> Outcome | BaseException:
        while len(self.outcomes) <= index:
            step = self.steps[len(self.outcomes)]
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
def sessions(tmp_path_factory: pytest.TempPathFactory):
    """One session per page, started when its first step is asked for."""
    require(platform.machine() == "x86_64", "an x86_64 machine (the pages show its output)")
    runs: dict[str, TutorialRun] = {}

    def session(page: str) -> TutorialRun:
        if page not in runs:
            runs[page] = TutorialRun(PAGE_STEPS[page], tmp_path_factory.mktemp(page_id(page)))
        return runs[page]

    yield session
    for run in runs.values():
        run.shell.close()


@pytest.mark.parametrize(("page", "index"), ALL_STEPS,
                         ids=[f"{page_id(page)}-{PAGE_STEPS[page][i].id}" for page, i in ALL_STEPS])
def test_step(sessions, page: str, index: int) -> None:
    step = PAGE_STEPS[page][index]
    if page in ROOT_PAGES:
        require(os.geteuid() == 0, f"root, for {page}")
    for pattern, program, what in STEP_PROGRAMS:
        if step.kind == "command" and pattern.search(step.text):
            require(shutil.which(program) is not None, what)
    outcome = sessions(page).outcome(index)
    if isinstance(outcome, BaseException):
        pytest.fail(f"line {step.line}: {step.kind} step could not run: {outcome}")
    problem = explain_mismatch(step, outcome.status, outcome.output)
    assert problem is None, problem


# --- the tutorial keeps the convention --------------------------------------------------

def test_every_section_runs_something() -> None:
    """Each section teaches by running a command, unless it is still a marked TODO."""
    lines = TUTORIAL.read_text().splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if line.startswith("## ")]
    idle = []
    for start, end in zip(starts, [*starts[1:], len(lines) + 1], strict=True):
        heading = lines[start - 1]
        body = "\n".join(lines[start:end - 1])
        if heading == "## Where next" or "TODO(lead)" in body:
            continue
        if not any(s.kind == "command" and start < s.line < end for s in STEPS):
            idle.append(heading)
    assert idle == []


@pytest.mark.parametrize("page", ALL_PAGES, ids=page_id)
def test_every_shell_block_is_run(page: str) -> None:
    """No page shows a shell command that no test runs, unless it says it is illustrative."""
    assert unrun_shell_blocks((ROOT / page).read_text()) == []


def test_pages_run_elsewhere_have_their_runner() -> None:
    for page, runner in RUN_ELSEWHERE.items():
        assert (ROOT / page).is_file() and (ROOT / runner).is_file(), (page, runner)


def test_required_topics_have_headings() -> None:
    headings = {line.strip() for line in TUTORIAL.read_text().splitlines()
                if line.startswith("## ")}
    assert [h for h in REQUIRED_HEADINGS if h not in headings] == []


def test_every_file_is_named_in_the_text_before_it() -> None:
    """A reader on a plain Markdown viewer does not see `title=`: the prose must name the file."""
    lines = TUTORIAL.read_text().splitlines()
    blocks = {f.line: f for f in fences(TUTORIAL.read_text())}
    unnamed = []
    for step in (s for s in STEPS if s.kind == "file"):
        previous_end = max((f.line + len(f.body) + 1 for f in blocks.values()
                            if f.line < step.line), default=0)
        prose = "\n".join(lines[previous_end:step.line - 1])
        if f"`{step.name}`" not in prose:
            unnamed.append(f"line {step.line}: {step.name}")
    assert unnamed == []


def test_every_file_is_used_by_a_later_command() -> None:
    later = {s.name: [c for c in STEPS if c.kind == "command" and c.line > s.line]
             for s in STEPS if s.kind == "file"}
    def uses(command: Step, name: str) -> bool:  # by file name, or as MODULE:ATTR
        path = Path(name)
        return path.name in command.text or (path.suffix == ".py" and
                                             f"{path.stem}:" in command.text)

    unused = [name for name, commands in later.items()
              if not any(uses(c, name) for c in commands)]
    assert unused == []


@pytest.mark.parametrize("page", ["tutorial.md", "index.md"])
def test_relative_links_resolve(page: str) -> None:
    doc = ROOT / "docs" / page
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    local = [t for t in targets if "://" not in t]
    assert local, f"{page} links nowhere"
    assert [t for t in local if not (doc.parent / t).exists()] == []


# --- the harness itself: it must be able to say no ---------------------------------------

SAMPLE = """\
Intro.

```console
$ echo one; echo two >&2
one
two
$ printf 'a\\nb\\nc\\n'
a
...
$ false
[exit 1]
$ echo a \\
  b
a b
```

Save `p.toml`:

```toml title="p.toml"
x = 1
```

```sh
ls
```
"""


def test_parse_sample() -> None:
    steps = parse(SAMPLE)
    assert [(s.kind, s.line) for s in steps] == [("command", 4), ("command", 7), ("command", 10),
                                                 ("command", 12), ("file", 19), ("command", 24)]
    assert steps[0].expected == ("one", "two")
    assert steps[1].expected == ("a", "...")
    assert steps[2].status == 1 and steps[2].expected == ()
    assert steps[3].text == "echo a \\\n  b"
    assert (steps[4].name, steps[4].text) == ("p.toml", "x = 1\n")
    assert steps[5].text == "ls" and not steps[5].checked  # a ```sh block: run, not compared
    assert unrun_shell_blocks(SAMPLE) == []


@pytest.mark.parametrize(("expected", "actual", "fits"), [
    (["a", "b"], ["a", "b"], True),
    (["a", "b"], ["a", "c"], False),
    (["a", "b"], ["a"], False),
    (["a"], ["a", "b"], False),
    (["a", "...", "d"], ["a", "b", "c", "d"], True),
    (["a", "...", "d"], ["a", "d"], True),
    (["a", "...", "d"], ["a", "b", "c"], False),
    (["...", "c"], ["a", "b", "c"], True),
    (["a", "..."], ["a"], True),
    (['{"time":...,"gate":"fd_write"}'], ['{"time":17.5,"gate":"fd_write"}'], True),
    (['{"time":...,"gate":"fd_write"}'], ['{"time":17.5,"gate":"fd_read"}'], False),
    (["x...z"], ["x", "z"], False),
    ([], [], True),
    ([], ["noise"], False),
])
def test_output_matching(expected: list[str], actual: list[str], fits: bool) -> None:
    assert output_matches(expected, actual) is fits


SCRIPTS = """\
```sh
# a comment is not a command
callgate gates

echo a \\
  b   # continued
```

```sh illustrative
sudo apt-get install everything
```

- in a list:

  ```console
  $ echo indented
  indented
  ```

```
callgate run WASM [--policy P]
```

```text
callgate run WASM [--policy P]
```

```zsh
ls
```
"""


def test_sh_blocks_run_and_illustrative_ones_do_not() -> None:
    steps = parse(SCRIPTS)
    assert [(s.line, s.text, s.checked) for s in steps] == [
        (3, "callgate gates", False), (5, "echo a \\\n  b   # continued", False),
        (16, "echo indented", True)]
    assert steps[2].expected == ("indented",)
    assert unrun_shell_blocks(SCRIPTS) == [
        "line 20: unlabelled block starting 'callgate run WASM [--policy P]': say ```sh (run "
        "it), ```sh illustrative or ```text",
        "line 28: ```zsh block (```console and ```sh blocks are run; mark it ```zsh "
        "illustrative if it must not be)"]


def test_a_sh_command_must_succeed_whatever_it_prints() -> None:
    step = parse("```sh\nfalse\n```\n")[0]
    assert explain_mismatch(step, 0, "anything at all\n") is None
    report = explain_mismatch(step, 1, "")
    assert report is not None and "a ```sh block's commands must succeed" in report


@pytest.mark.parametrize("doc", ["```sh\n# only a comment\n```\n",
                                 "```sh\n$ callgate gates\n```\n"])
def test_sh_convention_errors_are_refused(doc: str) -> None:
    with pytest.raises(DocFormatError):
        parse(doc)


def test_mismatch_report_names_line_status_and_diff() -> None:
    step = session_steps(fences("```console\n$ true\nyes\n```\n")[0])[0]
    assert explain_mismatch(step, 0, "yes\n\n") is None
    report = explain_mismatch(step, 3, "no\n")
    assert report is not None
    assert report.startswith("line 2: $ true")
    assert "exit status 3, the document says 0" in report and "-yes\n+no" in report


@pytest.mark.parametrize("doc", [
    "```console\nstray output\n$ true\n```\n",
    "```console\n$ false\n[exit 1]\nmore\n```\n",
    "```console\n```\n",
    "```console\n$ true\n",
])
def test_convention_errors_are_refused(doc: str) -> None:
    with pytest.raises(DocFormatError):
        parse(doc)


def test_session_keeps_state_and_reports_status(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    shell = ShellSession(tmp_path, {"PATH": os.environ["PATH"]}, control)
    try:
        shell.run("mkdir sub && cd sub && X=kept", 10)
        assert shell.cwd == tmp_path / "sub"
        shell.write_file("f.txt", "hello\n")
        outcome = shell.run('cat f.txt; echo "$X" >&2; exit_with() { return "$1"; }; exit_with 7',
                            10)
        assert outcome == Outcome(7, "hello\nkept\n")
        with pytest.raises(TimeoutError):
            shell.run("sleep 5", 0.5)
    finally:
        shell.close()
