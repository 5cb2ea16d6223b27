"""The ``callgate`` command line: one module per verb group, each registering its subcommands.

A verb module exposes ``register(subparsers)``, which adds its parsers and sets
``func`` on each to a ``(args) -> int`` handler. Errors callgate raises on purpose
(:class:`~callgate.errors.CallgateError`) are printed as one line and exit 2, and so
are usage errors (:class:`CliParser`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from callgate import __version__
from callgate.cli.inputs import SHIPPED
from callgate.errors import CallgateError

# Verb modules, in the order their commands appear in --help.
VERB_MODULES: tuple[str, ...] = (
    "callgate.cli.batch_verb",
    "callgate.cli.bpf_verbs",
    "callgate.cli.cache_verb",
    "callgate.cli.check_verb",
    "callgate.cli.compile_verb",
    "callgate.cli.completion_verb",
    "callgate.cli.covert_verb",
    "callgate.cli.doctor_verb",
    "callgate.cli.kernel_verbs",
    "callgate.cli.lab_verb",
    "callgate.cli.learn_verb",
    "callgate.cli.runtime_verbs",
    "callgate.cli.run_verb",
    "callgate.cli.teach_verbs",
)


class CliParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, exit status 2.

    argparse prints the whole usage block before the error; a one-line error that
    names the option and points at ``--help`` is what every other callgate error
    looks like. Subcommand parsers are made with the same class.
    """

    def error(self, message: str) -> NoReturn:
        unrecognized = "unrecognized arguments:"
        words = message.split(":", 1)[1].split() if message.startswith(unrecognized) else []
        self.exit(2, f"{self.prog}: error: {message}{policy_hint(words)} "
                  f"(see {self.prog} --help)\n")


def policy_hint(words: Sequence[str]) -> str:
    """`--allow-all` and friends among ``words`` (arguments no parser took): a shipped
    policy is a value of --policy, not an option. "" when there is none."""
    for word in words:
        if word.startswith("--") and word[2:] in SHIPPED:
            return f"; a shipped policy is named with --policy: --policy {word[2:]}"
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="callgate",
        description="Run untrusted WebAssembly plugins with every host call mediated "
        "by a seccomp-exact classic-BPF filter.",
    )
    parser.add_argument("--version", action="version", version=f"callgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        from callgate.cli.completion_verb import complete

        complete(parser)  # a Tab in a shell set up by `callgate completion`: answers, exits
    args = parse(parser, list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args) or 0)
    except CallgateError as exc:
        print(f"callgate {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 141


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``, keeping everything after the first ``--`` for the guest.

    Verbs that run a guest (``run``, ``learn``) gather what follows WASM in ``rest``
    (``argparse.REMAINDER``); argparse drops a ``--`` that comes first there, so
    ``run x.wasm -- --env A=1`` would hand ``--env A=1`` to callgate instead of the
    guest. Those verbs get ``rest`` with the ``--`` kept.
    """
    args = parser.parse_args(argv)
    if "--" not in argv or not isinstance(getattr(args, "rest", None), list):
        return args
    cut = argv.index("--")
    if getattr(args, "wasm", None) not in argv[:cut]:
        return args  # `--` before WASM: an ordinary separator
    head = parser.parse_args(argv[:cut])
    head.rest = [*head.rest, *argv[cut:]]
    return head
