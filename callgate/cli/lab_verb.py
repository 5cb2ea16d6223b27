"""``callgate lab``: exercises that check themselves.

``lab list`` names them; ``lab show N`` prints a lab's goal, hints, starter and the files
it hands out (``--solution``: its reference solution instead); ``lab start N [DIR]``
writes the starter and those files; ``lab check N [FILE]`` runs the lab's checker on
FILE (default: the lab's hand-in name, ``lab01.toml`` …) and exits 0 if every check
passed, 1 if not. The labs live in :mod:`callgate.teach.labs`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the labs load the runtime (wasmtime): only when a lab verb runs
    from callgate.teach.labs.base import Lab, Report

WIDTH = 88
_GUEST = re.compile(r"\{([a-z_]+)\}")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="exercises that check themselves: list, show, start, check",
        description="Labs: exercises whose checker runs real guests (or the real kernel) "
        "against the policy, filter, broker or lockdown you write, and says what failed "
        "and why. Start with `callgate lab list`.",
    )
    verbs = lab.add_subparsers(dest="lab_command", metavar="VERB", required=True)
    verbs.add_parser("list", help="list the labs").set_defaults(func=_list)

    show = verbs.add_parser("show", help="a lab's goal, hints, starter and files")
    show.add_argument("lab", metavar="N", help="the lab's number (or name)")
    show.add_argument("--solution", action="store_true",
                      help="print the reference solution instead (no peeking first)")
    show.set_defaults(func=_show)

    start = verbs.add_parser("start", help="write a lab's starter and files to DIR")
    start.add_argument("lab", metavar="N", help="the lab's number (or name)")
    start.add_argument("dir", metavar="DIR", nargs="?", default=".",
                       help="where to write them (default: here); existing files are kept")
    start.set_defaults(func=_start)

    check = verbs.add_parser("check", help="check a hand-in; exit 0 if it passes, 1 if not")
    check.add_argument("lab", metavar="N", help="the lab's number (or name)")
    check.add_argument("file", metavar="FILE", nargs="?",
                       help="the hand-in (default: the lab's file name, e.g. lab01.toml)")
    check.add_argument("--solution", action="store_true",
                       help="check the lab's own reference solution (it must pass)")
    check.set_defaults(func=_check)


def _list(args: argparse.Namespace) -> int:
    from callgate.teach.labs.catalog import LABS

    print(f"{'lab':<5}{'name':<12}{'hand in':<12}title")
    for lab in LABS:
        print(f"{lab.number:<5}{lab.slug:<12}{lab.handin:<12}{lab.title}")
    print("\n`callgate lab show N` for the goal and hints, `callgate lab start N` for a "
          "starter,\n`callgate lab check N` when you think it works.")
    return 0


def with_guests(text: str) -> str:
    """``{cat}`` -> the shipped cat.wasm's path, so commands work outside a checkout too."""
    from callgate.teach.labs.runner import guest_path

    return _GUEST.sub(lambda m: str(guest_path(m[1])) if guest_path(m[1]).exists() else m[0],
                      text)


def _show(args: argparse.Namespace) -> int:
    from callgate.teach.labs.catalog import get_lab
    from callgate.teach.labs.runner import lab_file

    lab = get_lab(args.lab)
    if args.solution:
        sys.stdout.write(lab_file(lab.solution))
        return 0
    out = [f"lab {lab.number} ({lab.slug}): {lab.title}", "", lab.goal, "", "hints:"]
    for i, hint in enumerate(lab.hints, 1):
        out.append(textwrap.fill(with_guests(hint), WIDTH, initial_indent=f"  {i}. ",
                                 subsequent_indent="     ", break_on_hyphens=False,
                                 break_long_words=False))
    out += ["", f"hand in: {lab.handin}; `callgate lab check {lab.number}` checks it"]
    for name, what in _files(lab):
        out += ["", f"{what} ({name}):", textwrap.indent(lab_file(name).rstrip("\n"), "    ")]
    if lab.try_it:
        out += ["", "try:", *(f"  $ {with_guests(command)}" for command in lab.try_it)]
    print("\n".join(out))
    return 0


def _files(lab: Lab) -> list[tuple[str, str]]:
    """(shipped file, what it is) for each file ``show`` prints and ``start`` writes."""
    files = [(name, "given") for name in lab.given]
    if lab.starter:
        files.insert(0, (lab.starter, f"starter, to save as {lab.handin}"))
    return files


def _start(args: argparse.Namespace) -> int:
    from callgate.teach.labs.base import LabError
    from callgate.teach.labs.catalog import get_lab
    from callgate.teach.labs.runner import lab_file

    lab = get_lab(args.lab)
    where = Path(args.dir)
    if not where.is_dir():
        raise LabError(f"{where}: no such directory")
    for name, _what in _files(lab):
        target = where / (lab.handin if name == lab.starter else name)
        if target.exists():
            print(f"kept {target} (it exists)")
            continue
        target.write_text(lab_file(name))
        print(f"wrote {target}")
    if not _files(lab):
        print(f"lab {lab.number} has no starter: `callgate lab show {lab.number}` says how "
              f"to make {lab.handin}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from callgate.teach.labs.base import LabError
    from callgate.teach.labs.catalog import get_lab

    lab = get_lab(args.lab)
    if args.solution:
        if args.file:
            raise LabError("give FILE or --solution, not both")
        report = _check_solution(lab)
    else:
        report = lab.check(Path(args.file or lab.handin))
    sys.stdout.write(report.render())
    return 0 if report.ok else 1


def _check_solution(lab: Lab) -> Report:
    from callgate.teach.labs.runner import lab_file

    with tempfile.TemporaryDirectory(prefix="callgate-lab-solution-") as scratch:
        path = Path(scratch) / lab.handin
        path.write_text(lab_file(lab.solution))
        return lab.check(path)
