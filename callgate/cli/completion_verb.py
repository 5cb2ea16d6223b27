"""``callgate completion SHELL``: tab completion for bash, zsh and fish, through argcomplete.

argcomplete (an optional extra, ``pip install 'callgate[completion]'``) completes from the
argparse parser itself: at each Tab the shell runs ``callgate`` with the command line in
its environment, :func:`complete` answers and exits before any verb runs. So every verb,
option and choice completes as ``--help`` lists it, and nothing is kept in sync by hand;
filter arguments (``--policy``, ``emu``, ``explain`` …) also offer the shipped policy
names. This verb prints the script that hooks a shell up to it.

Why argcomplete and not shtab: shtab writes static scripts for bash, zsh and tcsh but not
fish; argcomplete serves all three from one code path, costing one ``callgate`` start-up
(about 0.2 s) per Tab.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from callgate.errors import CallgateError

SHELLS = ("bash", "zsh", "fish")
INSTALL_HINT = "pip install 'callgate[completion]'"


class CompletionUnavailable(CallgateError):
    """argcomplete is not installed."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print the tab-completion script for bash, zsh or fish",
        description="Print the script that gives SHELL tab completion for callgate's verbs, "
        "options and choices. Load it for this shell with `eval \"$(callgate completion "
        "bash)\"` (zsh: the same with zsh; fish: `callgate completion fish | source`), or "
        "add that line to the shell's start-up file. Needs argcomplete: "
        f"{INSTALL_HINT}.",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(func=_completion)


def _argcomplete() -> Any:
    try:
        import argcomplete
    except ImportError:
        raise CompletionUnavailable(f"shell completion needs argcomplete: {INSTALL_HINT}"
                                    ) from None
    return argcomplete


def _completion(args: argparse.Namespace) -> int:
    script: str = _argcomplete().shellcode(["callgate"], shell=args.shell)
    sys.stdout.write(script if script.endswith("\n") else script + "\n")
    return 0


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer a completion request and exit, when the shell made one (else return)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return  # nothing to offer; the shell shows no completions
    argcomplete.autocomplete(parser)


def filter_completer(prefix: str, **_: object) -> list[str]:
    """Completions for a filter argument: the shipped policy names, then files."""
    from argcomplete.completers import FilesCompleter

    from callgate.cli.inputs import SHIPPED

    names = [name for name in SHIPPED if name.startswith(prefix)]
    files: list[str] = list(FilesCompleter()(prefix))
    return [*names, *files]


def completes_filters(action: argparse.Action) -> argparse.Action:
    """Mark ``action`` (a policy-or-program argument) to complete shipped names and files."""
    action.completer = filter_completer  # type: ignore[attr-defined]  # read by argcomplete
    return action
