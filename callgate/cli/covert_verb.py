"""``callgate covert``: covert channels between two plugins, measured with and without
countermeasures (docs/covert.md).

``covert list`` names the channels and countermeasures; ``covert measure [CHANNEL…]
[--against CM…]`` runs real plugins and prints bit rate, bit error rate and capacity per
pair; ``covert policy CHANNEL CM`` prints the policy a plugin runs under there;
``covert mprotect`` measures the host-level mprotect channel in a forked child, without
and then under callgate's kernel host policy. The work is in
:mod:`callgate.teach.covert` and :mod:`callgate.teach.covert_mprotect`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callgate.errors import CallgateError


class CovertUsageError(CallgateError, ValueError):
    """An unknown channel or countermeasure, or a bad setting."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    covert = subparsers.add_parser(
        "covert",
        help="covert channels between two plugins: measure them, and what each "
        "countermeasure leaves",
        description="Two plugins that no gate connects send bits through what they share "
        "anyway (time, the page cache). `measure` runs real plugins and reports each "
        "channel's bit rate, bit error rate and capacity, before and after each "
        "countermeasure (docs/covert.md).",
    )
    verbs = covert.add_subparsers(dest="covert_command", metavar="VERB", required=True)
    verbs.add_parser("list", help="the channels and countermeasures").set_defaults(func=_list)

    measure = verbs.add_parser("measure", help="send bits through channels and measure them")
    measure.add_argument("channels", metavar="CHANNEL", nargs="*",
                         help="channels to measure (default: all; see `covert list`)")
    measure.add_argument("--against", metavar="CM", nargs="+", default=["all-each"],
                         help="countermeasures: none, deny, clocks, jitter, all (default: "
                         "none and each one alone)")
    measure.add_argument("--bits", type=int, default=128, help="payload bits (default 128)")
    measure.add_argument("--seed", type=int, default=1, help="the payload's seed (default 1)")
    measure.add_argument("--resolution", default="1ms",
                         help="[gates.clocks] resolution for `clocks` (default 1ms)")
    measure.add_argument("--jitter", default="50us",
                         help="[gates] jitter for `jitter` (default 50us)")
    measure.add_argument("--dir", metavar="DIR",
                         help="where the shared file goes (default: the temporary directory, "
                         "or here when that is a tmpfs)")
    measure.add_argument("--isolated", action="store_true",
                         help="run each plugin in its own locked-down worker process "
                         "(IsolatedPlugin); countermeasures none and deny only")
    measure.add_argument("--repeat", type=int, default=1, metavar="N",
                         help="measure each pair N times and print medians and the "
                         "capacity's range (default 1: every measurement in full)")
    measure.add_argument("--markdown", action="store_true", help="print a Markdown table")
    measure.set_defaults(func=_measure)

    policy = verbs.add_parser("policy", help="the policy a plugin runs under in a measurement")
    policy.add_argument("channel", metavar="CHANNEL")
    policy.add_argument("countermeasure", metavar="CM")
    policy.add_argument("--role", choices=("sender", "receiver"), default="sender")
    policy.set_defaults(func=_policy)

    mprotect = verbs.add_parser(
        "mprotect", help="the mprotect channel in a forked child, then under the host policy")
    mprotect.add_argument("--bits", type=int, default=256, help="payload bits (default 256)")
    mprotect.add_argument("--markdown", action="store_true", help="print a Markdown table")
    mprotect.set_defaults(func=_mprotect)


def _list(args: argparse.Namespace) -> int:
    from callgate.teach.covert import CHANNELS, COUNTERMEASURES

    print("channels:")
    for c in CHANNELS.values():
        hammer = f"hammer {c.hammer}" if c.hammer else "no hammer gate"
        print(f"  {c.name:<10} {c.summary} ({hammer})")
    print("countermeasures:")
    for m in COUNTERMEASURES.values():
        print(f"  {m.name:<10} {m.summary}")
    return 0


def _duration(text: str, what: str) -> int:
    from callgate.policy.errors import ProblemList
    from callgate.policy.toml_loader import parse_duration

    problems = ProblemList("<command line>")
    ns = parse_duration(text, what, problems)
    if ns is None or ns == 0:
        why = problems.errors[0].message if problems.errors else "must not be 0"
        raise CovertUsageError(f"{what} {text!r}: {why}")
    return ns


def _measure(args: argparse.Namespace) -> int:
    from callgate.teach.covert import (
        CHANNELS,
        COUNTERMEASURES,
        Settings,
        measure,
        repeated_table,
        table,
    )

    channels = args.channels or list(CHANNELS)
    if args.against == ["all-each"]:
        against = ["none", "deny"] if args.isolated else ["none", "deny", "clocks", "jitter"]
    else:
        against = args.against
    for name in channels:
        if name not in CHANNELS:
            raise CovertUsageError(f"unknown channel {name!r}; channels: {', '.join(CHANNELS)}")
    for name in against:
        if name not in COUNTERMEASURES:
            raise CovertUsageError(f"unknown countermeasure {name!r}; countermeasures: "
                                   f"{', '.join(COUNTERMEASURES)}")
    if args.isolated and set(against) - {"none", "deny"}:
        raise CovertUsageError("--isolated takes countermeasures none and deny only: the "
                               "timing options apply to in-process plugins")
    if not 8 <= args.bits <= 100_000:
        raise CovertUsageError(f"--bits {args.bits}: give 8 to 100000")
    settings = Settings(bits=args.bits, seed=args.seed,
                        resolution_ns=_duration(args.resolution, "--resolution"),
                        jitter_ns=_duration(args.jitter, "--jitter"))
    if not 1 <= args.repeat <= 100:
        raise CovertUsageError(f"--repeat {args.repeat}: give 1 to 100")
    workdir = Path(args.dir) if args.dir else None
    groups = [[measure(channel, cm, settings, workdir, args.isolated)
               for _ in range(args.repeat)]
              for channel in channels for cm in against]
    if args.repeat == 1:
        sys.stdout.write(table([g[0] for g in groups], markdown=args.markdown))
    else:
        sys.stdout.write(repeated_table(groups, markdown=args.markdown))
    return 0


def _policy(args: argparse.Namespace) -> int:
    from callgate.teach.covert import CHANNELS, COUNTERMEASURES, Settings, policy_text

    if args.channel not in CHANNELS or args.countermeasure not in COUNTERMEASURES:
        raise CovertUsageError(f"give a channel ({', '.join(CHANNELS)}) and a countermeasure "
                               f"({', '.join(COUNTERMEASURES)})")
    sys.stdout.write(policy_text(args.role, CHANNELS[args.channel], args.countermeasure,
                                 Settings()))
    return 0


def _mprotect(args: argparse.Namespace) -> int:
    from callgate.teach.covert_mprotect import measure_mprotect, mprotect_table

    if not 8 <= args.bits <= 100_000:
        raise CovertUsageError(f"--bits {args.bits}: give 8 to 100000")
    sys.stdout.write(mprotect_table(measure_mprotect(args.bits), markdown=args.markdown))
    return 0
