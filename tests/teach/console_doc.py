"""Run a Markdown document's shell sessions and compare what they print with what it shows.

The convention, for docs whose commands must really run (docs/tutorial.md):

* A fenced block tagged ``console`` is a shell session. A line starting with ``$ `` is a
  command; a command line ending in ``\\`` continues on the next line. The lines after a
  command, up to the next ``$ `` line, are its expected output (stdout and stderr
  together, as a terminal shows them). Trailing blank lines do not count.
* A line that is exactly ``...`` matches any number of output lines (none included).
  ``...`` inside a line matches any text within that line (times, pids).
* ``[exit N]`` as the last expected line says the command exits with status N. Without
  it the command must exit 0.
* A fenced block with ``title="NAME"`` in its info string (```` ```toml title="p.toml" ````)
  is a file the reader creates: it is written to NAME, relative to the session's current
  directory, at that point of the document.
* A ``sh`` (or ``bash``, ``shell``) block is a script of commands whose output the page
  does not show: each command (a line, ``\\`` continuing it; blank and ``#`` lines
  skipped) runs in the session and must exit 0.
* A block whose info string has the word ``illustrative`` (```` ```sh illustrative ````)
  is not run: a synopsis, a command for another machine (``apt-get``), one that installs
  into the reader's environment or takes minutes. Markdown viewers ignore the extra
  word. Every other block a reader would paste into a shell is run
  (:func:`unrun_shell_blocks` finds the ones that are not).
* A fence indented inside a list item is read without that indentation, as Markdown
  renders it.

Commands run in order in one bash process, so ``cd``, variables and files carry over from
step to step exactly as in the reader's shell. Each command's stdin is ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ELLIPSIS = "..."
PROMPT = "$ "
SESSION_LANGS = frozenset({"console"})
# Blocks of bare commands, run one by one, their output not compared.
SCRIPT_LANGS = frozenset({"sh", "bash", "shell"})
# Info strings a reader would take for shell commands; `console` and SCRIPT_LANGS blocks
# are run, the others must be marked illustrative.
SHELL_LANGS = frozenset({"sh", "bash", "shell", "zsh", "shell-session", "shellsession",
                         "terminal", "console"})
ILLUSTRATIVE = "illustrative"
# An unlabelled block starting with one of these is a command line (or a synopsis of one):
# it must say which (```sh, ```sh illustrative, ```text).
COMMAND_WORDS = ("callgate ", "python ", "python3 ", "pip ", "sudo ", "apt-get ")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_TITLE = re.compile(r"""\btitle=(?:"([^"]+)"|'([^']+)'|(\S+))""")
_EXIT = re.compile(r"^\[exit (\d+)\]$")


class DocFormatError(ValueError):
    """The document breaks the convention (so some of it would not be checked)."""


@dataclass(frozen=True, slots=True)
class Fence:
    """One fenced block: its info string, the 1-based line of its opening fence, its body."""

    info: str
    line: int
    body: tuple[str, ...]

    @property
    def lang(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""

    @property
    def title(self) -> str | None:
        m = _TITLE.search(self.info)
        return next(g for g in m.groups() if g) if m else None

    @property
    def illustrative(self) -> bool:
        return ILLUSTRATIVE in self.info.split()[1:]


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the reader does: run a command, or create a file."""

    kind: str  # "command" or "file"
    line: int  # 1-based line of the command (or of the file's opening fence)
    text: str  # the command, or the file's content
    name: str = ""  # the file name (files only)
    expected: tuple[str, ...] = ()
    status: int = 0
    checked: bool = True  # the output is compared (False: a sh block's command)

    @property
    def id(self) -> str:
        what = f"file {self.name}" if self.kind == "file" else self.text.split("\n")[0]
        return f"L{self.line:04d}-" + re.sub(r"[^A-Za-z0-9._=+-]+", "-", what)[:50].strip("-")


def fences(markdown: str) -> list[Fence]:
    """Every fenced code block, in order. An unclosed fence is an error."""
    lines = markdown.splitlines()
    found: list[Fence] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m[1][0] == "`" and "`" in m[2]):
            i += 1
            continue
        marker, start = m[1], i
        indent = len(lines[i]) - len(lines[i].lstrip(" "))
        close = re.compile(rf"^ *{marker[0]}{{{len(marker)},}}\s*$")
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            i += 1
        if i == len(lines):
            raise DocFormatError(f"line {start + 1}: fence {marker!r} is never closed")
        body = tuple(_dedent(line, indent) for line in lines[start + 1:i])
        found.append(Fence(m[2].strip(), start + 1, body))
        i += 1
    return found


def _dedent(line: str, indent: int) -> str:
    """``line`` without up to ``indent`` leading spaces (a fence inside a list item)."""
    return line[min(indent, len(line) - len(line.lstrip(" "))):]


def session_steps(fence: Fence) -> list[Step]:
    """The commands of one ``console`` block with their expected output and status."""
    steps: list[Step] = []
    body = list(fence.body)
    i = 0
    while i < len(body):
        line = body[i]
        if not line.startswith(PROMPT):
            if line.strip():
                raise DocFormatError(f"line {fence.line + 1 + i}: output before any command "
                                     f"in a console block: {line!r}")
            i += 1
            continue
        start = i
        command = [line[len(PROMPT):]]
        while command[-1].endswith("\\") and i + 1 < len(body):
            i += 1
            command.append(body[i])
        i += 1
        output: list[str] = []
        while i < len(body) and not body[i].startswith(PROMPT):
            output.append(body[i].rstrip())
            i += 1
        while output and not output[-1]:
            output.pop()
        status = 0
        if output and (m := _EXIT.match(output[-1])):
            status = int(m[1])
            output.pop()
        if any(_EXIT.match(out) for out in output):
            raise DocFormatError(f"line {fence.line + 1 + start}: [exit N] must be the last "
                                 "line of a command's output")
        steps.append(Step("command", fence.line + 1 + start, "\n".join(command),
                          expected=tuple(output), status=status))
    if not steps:
        raise DocFormatError(f"line {fence.line}: console block without a `$ ` command")
    return steps


def script_steps(fence: Fence) -> list[Step]:
    """The commands of one ``sh`` block: each must exit 0; their output is not compared."""
    steps: list[Step] = []
    body = list(fence.body)
    i = 0
    while i < len(body):
        start = i
        command = [body[i]]
        while command[-1].endswith("\\") and i + 1 < len(body):
            i += 1
            command.append(body[i])
        i += 1
        text = "\n".join(command)
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if text.startswith(PROMPT):
            raise DocFormatError(f"line {fence.line + 1 + start}: `$ ` in a ```{fence.lang} "
                                 "block; a session with output is a ```console block")
        steps.append(Step("command", fence.line + 1 + start, text, checked=False))
    if not steps:
        raise DocFormatError(f"line {fence.line}: ```{fence.lang} block without a command")
    return steps


def parse(markdown: str) -> list[Step]:
    """Every step of the document, in reading order."""
    steps: list[Step] = []
    for fence in fences(markdown):
        if fence.illustrative:
            continue
        if fence.title is not None:
            text = "\n".join(fence.body) + "\n" if fence.body else ""
            steps.append(Step("file", fence.line, text, name=fence.title))
        elif fence.lang in SESSION_LANGS:
            steps.extend(session_steps(fence))
        elif fence.lang in SCRIPT_LANGS:
            steps.extend(script_steps(fence))
    return steps


def unrun_shell_blocks(markdown: str) -> list[str]:
    """Blocks a reader would type into a shell that :func:`parse` does not run, described.

    Illustrative blocks are left out on purpose; any other block that looks like shell
    input and is not a ``console`` or ``sh`` block is reported.
    """
    problems = []
    for fence in fences(markdown):
        if (fence.illustrative or fence.title is not None or fence.lang in SESSION_LANGS
                or fence.lang in SCRIPT_LANGS):
            continue
        first = next((line for line in fence.body if line.strip()), "")
        if fence.lang in SHELL_LANGS:
            problems.append(f"line {fence.line}: ```{fence.info} block (```console and "
                            f"```sh blocks are run; mark it ```{fence.lang} {ILLUSTRATIVE} "
                            "if it must not be)")
        elif any(line.startswith(PROMPT) for line in fence.body):
            problems.append(f"line {fence.line}: ```{fence.info} block has `$ ` command lines")
        elif not fence.lang and first.startswith(COMMAND_WORDS):
            problems.append(f"line {fence.line}: unlabelled block starting {first[:30]!r}: "
                            f"say ```sh (run it), ```sh {ILLUSTRATIVE} or ```text")
    return problems


def _line_matches(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    if ELLIPSIS not in expected:
        return False
    pattern = ".*".join(re.escape(part) for part in expected.split(ELLIPSIS))
    return re.fullmatch(pattern, actual) is not None


def output_matches(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Whether ``actual`` lines fit ``expected`` lines, ``...`` lines matching any run."""

    @functools.cache
    def fits(e: int, a: int) -> bool:
        if e == len(expected):
            return a == len(actual)
        if expected[e] == ELLIPSIS:
            return fits(e + 1, a) or (a < len(actual) and fits(e, a + 1))
        return a < len(actual) and _line_matches(expected[e], actual[a]) and fits(e + 1, a + 1)

    return fits(0, 0)


def output_lines(text: str) -> list[str]:
    """Output as the document writes it: lines right-stripped, trailing blank lines gone."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def explain_mismatch(step: Step, status: int, output: str) -> str | None:
    """None if the run fits the step; else a report a reader of the failure can act on."""
    actual = output_lines(output)
    problems = []
    if status != step.status:
        hint = ("" if step.status else " (add `[exit N]` if that is intended)") if step.checked \
            else " (a ```sh block's commands must succeed)"
        problems.append(f"exit status {status}, the document says {step.status}{hint}")
    if step.checked and not output_matches(step.expected, actual):
        diff = difflib.unified_diff(list(step.expected), actual, "document", "actual",
                                    lineterm="", n=2)
        problems.append("output differs:\n" + "\n".join(diff))
    if not problems:
        return None
    return (f"line {step.line}: $ {step.text}\n" + "\n".join(problems)
            + "\n--- full output ---\n" + output)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    output: str


class ShellSession:
    """One persistent bash, fed the document's steps in order, like a reader's terminal."""

    _MARK = "__console_doc_done__"

    def __init__(self, cwd: Path, env: Mapping[str, str], control: Path) -> None:
        self.cwd = Path(cwd)
        self._out = control / "output"
        self._proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=dict(env), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self._lines = selectors.DefaultSelector()
        self._lines.register(self._proc.stdout, selectors.EVENT_READ)
        self.dead: str | None = None

    def run(self, command: str, timeout: float) -> Outcome:
        """Run one command in the shell; its stdout and stderr go to one file, as on a tty."""
        if self.dead:
            raise RuntimeError(f"the shell is gone: {self.dead}")
        out = shlex.quote(str(self._out))
        self._proc.stdin.write(f"{{ {command}\n}} >{out} 2>&1 </dev/null\n"
                               f"__rc=$?; printf '{self._MARK} %s %s\\n' \"$__rc\" \"$PWD\"\n")
        self._proc.stdin.flush()
        deadline = time.monotonic() + timeout
        line = ""
        while not line.endswith("\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not self._lines.select(left):
                self._kill(f"`{command}` did not finish within {timeout} s")
                raise TimeoutError(self.dead)
            chunk = self._proc.stdout.readline()
            if not chunk:
                self._kill(f"the shell exited during `{command}`")
                raise RuntimeError(self.dead)
            line += chunk
        mark, status, cwd = line.rstrip("\n").split(" ", 2)
        if mark != self._MARK:
            raise RuntimeError(f"unexpected line from the shell: {line!r}")
        self.cwd = Path(cwd)
        return Outcome(int(status), self._out.read_text(errors="replace"))

    def write_file(self, name: str, text: str) -> None:
        """Create a file the document shows, in the shell's current directory."""
        path = self.cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def _kill(self, why: str) -> None:
        self.dead = why
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    def close(self) -> None:
        if self.dead is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill("did not exit")
        self._lines.close()
        self._proc.stdout.close()
