"""What a lab is, what its checker reports, and how a report reads.

A lab's checker is a generator of :class:`Check` results: each says what was tried and,
when it failed, why - which case, what the guest saw, what to change. A checker that
cannot go on (the file does not load) raises :class:`Stop` with its last check.
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from callgate.errors import CallgateError


class LabError(CallgateError):
    """A lab cannot be run as asked: no such lab, no such file."""


@dataclass(frozen=True, slots=True)
class Check:
    """One thing a checker tried: its name, whether it held, and what to do if not."""

    name: str
    ok: bool
    details: tuple[str, ...] = ()


def passed(name: str, *details: str) -> Check:
    return Check(name, True, details)


def failed(name: str, *details: str) -> Check:
    return Check(name, False, details)


class Stop(Exception):
    """Raised by a checker that cannot go on; ``check`` is the failure that stopped it."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.name)
        self.check = check


#: A checker: the handed-in file and a scratch directory of its own -> its checks.
Checker = Callable[[Path, Path], Iterator[Check]]


@dataclass(frozen=True)
class Lab:
    """One exercise: what to do, hints, the file to hand in, and the checker."""

    number: int
    slug: str
    title: str
    goal: str
    hints: tuple[str, ...]
    handin: str  # the default name of the file to hand in: lab01.toml, lab06.py …
    solution: str  # file name under callgate/teach/labs/files/
    checker: Checker = field(repr=False)
    starter: str | None = None  # file name under files/, printed by `show`
    given: tuple[str, ...] = ()  # files the lab hands out (printed by `show`)
    try_it: tuple[str, ...] = ()  # commands worth running while working on it

    def check(self, path: Path) -> Report:
        """Run the checker on ``path``; never raises for a wrong answer."""
        if not path.is_file():
            raise LabError(f"{path}: no such file; write it first (`callgate lab show "
                           f"{self.number}` prints a starter)")
        checks: list[Check] = []
        with tempfile.TemporaryDirectory(prefix=f"callgate-lab{self.number:02d}-") as scratch:
            try:
                checks.extend(self.checker(path, Path(scratch)))
            except Stop as stop:
                checks.append(stop.check)
        return Report(self, path, tuple(checks))


#: Width a report's prose is wrapped to; commands and listings stay on one line each.
REPORT_WIDTH = 96
_INDENT = " " * 8


def _detail_lines(detail: str) -> str:
    """One detail, indented; prose wrapped, but never a command someone may paste."""
    if "callgate " in detail or detail.startswith(" ") or len(detail) + 8 <= REPORT_WIDTH:
        return _INDENT + detail
    return textwrap.fill(detail, REPORT_WIDTH, initial_indent=_INDENT,
                         subsequent_indent=_INDENT + "  ", break_long_words=False,
                         break_on_hyphens=False)


@dataclass(frozen=True)
class Report:
    """What a checker found, in order."""

    lab: Lab
    path: Path
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def render(self) -> str:
        lines = [f"lab {self.lab.number} ({self.lab.slug}): checking {self.path}"]
        for check in self.checks:
            lines.append(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}")
            lines.extend(_detail_lines(detail) for detail in check.details)
        good = sum(check.ok for check in self.checks)
        if self.ok:
            lines.append(f"all {good} checks passed: lab {self.lab.number} done.")
        else:
            bad = len(self.checks) - good
            lines.append(f"{good} of {len(self.checks)} checks passed; fix what is marked "
                         f"FAIL ({bad}) and check again.")
        return "\n".join(lines) + "\n"
