"""The ``callgate`` command line: one module per verb group, each registering its subcommands.

A verb module exposes ``register(subparsers)``, which adds its parsers and sets
``func`` on each to a ``(args) -> int`` handler. Errors callgate raises on purpose
(:class:`~callgate.errors.CallgateError`) are printed as one line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from callgate import __version__
from callgate.errors import CallgateError

# Verb modules, in the order their commands appear in --help.
VERB_MODULES: tuple[str, ...] = (
    "callgate.cli.bpf_verbs",
    "callgate.cli.check_verb",
    "callgate.cli.compile_verb",
    "callgate.cli.kernel_verbs",
    "callgate.cli.learn_verb",
    "callgate.cli.runtime_verbs",
    "callgate.cli.run_verb",
    "callgate.cli.teach_verbs",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CallgateError as exc:
        print(f"callgate {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 141
