"""``callgate check POLICY``: lint a TOML policy or an OCI/Docker profile.

Prints one line per finding (``FILE: KEY.PATH: LEVEL: message``) and a summary,
and exits 1 when any finding is an error, so it can gate a CI job.
"""

from __future__ import annotations

import argparse
from typing import TypedDict

from callgate.arch import get_arch, native_arch
from callgate.cli.completion_verb import completes_filters
from callgate.policy import PolicyError
from callgate.policy.lint import has_errors, lint, lint_error
from callgate.policy.model import Layer


def add_policy_target_arguments(parser: argparse.ArgumentParser,
                                arch_help: str | None = None) -> None:
    """``--arch``, ``--caps``, ``--kernel-version``, ``--gate-names``: what a policy is read for."""
    parser.add_argument("-a", "--arch", help=arch_help or "kernel arch to judge the kernel "
                        "section on (x86_64, aarch64, …); default: this machine's")
    parser.add_argument("--caps", default="", metavar="CAP,…",
                        help="capabilities an OCI profile's includes/excludes see "
                        "(e.g. CAP_SYS_ADMIN); default: none")
    parser.add_argument("--kernel-version", metavar="X.Y",
                        help="kernel version for OCI minKernel; default: the running kernel")
    parser.add_argument("--gate-names", default="", metavar="NAME,…",
                        help="app-defined gate names the application registers")


class PolicyTargetKwargs(TypedDict):
    """What :func:`policy_target_kwargs` returns: keyword arguments of ``load_policy``."""

    arch: str | None
    caps: list[str]
    kernel_version: str | None
    gate_names: list[str]


def policy_target_kwargs(args: argparse.Namespace) -> PolicyTargetKwargs:
    """The ``load_policy`` keyword arguments those options give."""
    return {
        "arch": args.arch,
        "caps": _split(args.caps),
        "kernel_version": args.kernel_version,
        "gate_names": _split(args.gate_names),
    }


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = subparsers.add_parser(
        "check",
        help="lint a policy: unknown names, dead or shadowed rules, arch mismatches",
        description="Load POLICY (TOML or OCI/Docker JSON) and report what is wrong or "
        "suspicious, each with its key path. Exit status 1 if any error is found.",
    )
    completes_filters(check.add_argument(
        "policy", metavar="POLICY", help="policy file (.toml or .json), or a shipped one by "
        "name (default, default+fs, allow-all); - for stdin"))
    check.add_argument("--layer", choices=[layer.value for layer in Layer], action="append",
                       help="check only this layer (repeatable); default: both")
    add_policy_target_arguments(check)
    check.add_argument("-v", "--verbose", action="store_true",
                       help="also print info findings (names runc skips, ties, …)")
    check.add_argument("--json", action="store_true",
                       help="print every finding (info too) as one JSON document "
                       "(schema callgate.check/1)")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from callgate.cli.inputs import load_policy_input, read_filter_input, require_policy

    given = read_filter_input(args.policy)
    require_policy(given, "check")
    arch = get_arch(args.arch) if args.arch else native_arch()
    try:
        result = load_policy_input(given, **policy_target_kwargs(args))
    except PolicyError as err:
        findings = lint_error(err)
    else:
        layers = [Layer(name) for name in args.layer] if args.layer else list(Layer)
        findings = lint(result, arch, layers)
    if args.json:
        from callgate.cli.reports import check_report, write_json

        write_json(check_report(given.name, findings))
        return 1 if has_errors(findings) else 0
    shown = [f for f in findings if args.verbose or f.level != "info"]
    for finding in shown:
        print(finding)
    counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning")}
    print(f"{given.name}: {counts['error']} error(s), {counts['warning']} warning(s)")
    return 1 if has_errors(findings) else 0


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
