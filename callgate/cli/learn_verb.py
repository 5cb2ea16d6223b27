"""``callgate learn``: write a least-privilege policy for a WASI command from one run of it.

The policy is what the module's import table allows at most, narrowed to what a
learning run actually called (with the fds, clocks and flags it used), plus the host
syscalls the run needed beyond the derived defaults (``[kernel]``, learned with strace
or a USER_NOTIF supervisor, unless ``--no-kernel``). See docs/learn.md.

Where output goes: with ``-o POLICY`` the guest's stdout is this process's stdout;
without it the policy is printed on stdout, and the guest's stdout is sent to stderr so
the two never mix. The summary always goes to stderr. With ``--json`` stdout carries one
JSON document only (the summary, and the policy text unless ``-o`` wrote it to a file),
and the guest's stdout goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callgate.cli.cache_verb import add_cache_options, use_cache_options
from callgate.cli.run_verb import (
    add_command_arguments,
    add_guest_options,
    add_limit_options,
    late_options,
    print_dir_notes,
)
from callgate.cli.runtime_verbs import limits_from
from callgate.errors import CallgateError
from callgate.gates.wasi import WasiConfig
from callgate.learn.kernel_trace import METHODS


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    learn = subparsers.add_parser(
        "learn",
        help="learn a least-privilege policy from a module's imports and one run of it",
        description="Run WASM's _start once with every gate allowed and recorded, and write "
        "a commented TOML policy that allows only the gates it used (pinning fds, clocks "
        "and flags to the values seen) and the host syscalls it needed (watched with strace "
        "or a USER_NOTIF supervisor). "
        "Without -o the policy goes to stdout and the guest's stdout to stderr.",
    )
    add_command_arguments(learn, _add_options)
    learn.set_defaults(func=_learn)


def _add_options(parser: argparse.ArgumentParser) -> None:
    add_guest_options(parser)
    add_limit_options(parser)
    add_cache_options(parser)
    parser.add_argument("-o", "--output", metavar="POLICY",
                        help="write the policy to this file (default: stdout)")
    parser.add_argument("--json", action="store_true", default=None,
                        help="print the summary (and the policy, without -o) as one JSON "
                        "document on stdout (schema callgate.learn/1); the guest's stdout "
                        "goes to stderr")
    parser.add_argument("--no-kernel", action="store_true", default=None,
                        help="do not learn the [kernel] section")
    parser.add_argument("--kernel-trace", choices=("auto", *METHODS), default=None,
                        help="how to watch the run's host syscalls: strace -f, or a "
                        "USER_NOTIF supervisor in this process (default auto: strace when "
                        "installed)")


def _learn(args: argparse.Namespace) -> int:
    from callgate.learn import learn

    guest_args = late_options(args, _add_options, "callgate learn")
    use_cache_options(args)
    print_dir_notes(args, "learn")
    config = WasiConfig(args=[Path(args.wasm).name, *guest_args], env=dict(args.env),
                        preopens=args.dir)
    config.check_preopens()  # a missing --dir is an error now, whatever the guest does
    sys.stdout.flush()
    if args.output and not Path(args.output).parent.is_dir():
        raise CallgateError(f"cannot write {args.output}: its directory does not exist")
    kernel = None if args.no_kernel else args.kernel_trace or "auto"
    learned = learn(args.wasm, config, limits_from(args), kernel=kernel,
                    stdout=None if args.output and not args.json else sys.stderr)
    if args.output:
        try:
            Path(args.output).write_text(learned.text)
        except OSError as exc:
            raise CallgateError(f"cannot write {args.output}: {exc.strerror}") from None
    if args.json:
        from callgate.cli.reports import learn_report, write_json

        write_json(learn_report(learned, args.output))
        return 0
    if not args.output:
        sys.stdout.write(learned.text)
        sys.stdout.flush()
    for line in learned.summary():
        print(f"callgate learn: {line}", file=sys.stderr)
    if args.output:
        print(f"callgate learn: wrote {args.output}", file=sys.stderr)
    return 0
