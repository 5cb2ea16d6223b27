"""``callgate compile POLICY``: a policy section → a seccomp program, in the format asked for.

``raw`` is libseccomp's ``export_bpf`` byte format (packed ``struct sock_filter``),
ready for ``seccomp(2)`` or ``callgate emu``; ``asm`` is seccomp-tools syntax that
``callgate asm`` reads back to the same bytes; ``c`` a C array; ``pfc`` readable
pseudo filter code; ``oci`` (kernel section only) an OCI/Docker seccomp profile that
runc loads, rewritten so that runc decides every call as callgate does
(:mod:`callgate.policy.oci_export`). Without ``-o`` the program goes to stdout as ``asm`` (raw
bytes are refused on a terminal); with ``-o FILE`` the default is ``raw``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from types import MappingProxyType

from callgate.arch import AUDIT_ARCH_CALLGATE, GATE_ARCH, Arch, get_arch, native_arch
from callgate.arch.gate_numbers import APP_GATE_FIRST, APP_GATE_LAST
from callgate.asm.formats import render
from callgate.cli.check_verb import add_policy_target_arguments, policy_target_kwargs
from callgate.cli.completion_verb import completes_filters
from callgate.cli.inputs import (
    CliInputError,
    FilterInput,
    load_policy_input,
    read_filter_input,
    require_policy,
)
from callgate.errors import CallgateError
from callgate.policy import LoadResult
from callgate.policy.compiler import compile_plan, section_for
from callgate.policy.model import Layer, Policy, Section
from callgate.policy.pfc import render_pfc
from callgate.policy.plan import SectionPlan, plan_section

FORMATS = ("raw", "asm", "c", "hex", "pfc", "oci")


class CompileUsageError(CallgateError, ValueError):
    """Options that do not fit together (a kernel arch for the gates layer, …)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "compile",
        help="compile a policy's gates or kernel section to a seccomp BPF program",
        description="Compile one section of POLICY (TOML or OCI/Docker JSON) for one arch. "
        "The program checks the arch first, refuses x32 calls on x86_64, finds the syscall "
        "with a balanced tree of ranges and compares 64-bit args exactly.",
    )
    completes_filters(parser.add_argument(
        "policy", metavar="POLICY", help="policy file (.toml or .json), or a shipped policy "
        "by name (default, default+fs, allow-all); - for stdin"
    ))
    add_section_arguments(parser)
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    parser.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        help="output format; default: raw with -o, asm on stdout; oci: an OCI/Docker "
        "seccomp profile for runc (kernel section)",
    )
    parser.set_defaults(func=_compile)


def gate_arch(names: list[str]) -> Arch:
    """The gate arch plus app-defined gates, numbered from 0x1000 in the order given."""
    if not names:
        return GATE_ARCH
    if len(names) > APP_GATE_LAST - APP_GATE_FIRST + 1:
        raise CompileUsageError(f"{len(names)} app gates do not fit 0x1000..0x1fff")
    numbers = dict(GATE_ARCH.numbers)
    for i, name in enumerate(names):
        if name in numbers:
            raise CompileUsageError(f"app gate {name!r} is listed twice or is a WASI gate")
        numbers[name] = APP_GATE_FIRST + i
    return Arch(GATE_ARCH.name, AUDIT_ARCH_CALLGATE, MappingProxyType(numbers))


def _layer(policy: Policy, chosen: str | None) -> Layer:
    if chosen:
        return Layer(chosen)
    return Layer.KERNEL if policy.kernel is not None or policy.gates is None else Layer.GATES


def _arch(layer: Layer, args: argparse.Namespace) -> Arch:
    if layer is Layer.GATES:
        if args.arch and get_arch(args.arch) is not GATE_ARCH:
            raise CompileUsageError(
                f"--arch {args.arch} is a kernel arch; the gates layer always compiles for "
                "the callgate gate arch (drop --arch, or use --layer kernel)"
            )
        return gate_arch(policy_target_kwargs(args)["gate_names"])
    return get_arch(args.arch) if args.arch else native_arch()


@dataclass(frozen=True)
class PolicyTarget:
    """One section of a loaded policy, resolved for the arch it compiles for.

    ``compile``, ``explain`` and ``graph`` all start here, so they agree on which
    section and arch a command line means.
    """

    loaded: LoadResult
    layer: Layer
    arch: Arch
    section: Section
    plan: SectionPlan


def add_section_arguments(parser: argparse.ArgumentParser, arch_help: str | None = None) -> None:
    """``--layer`` plus the options that say what the policy is read for."""
    parser.add_argument(
        "--layer",
        choices=[layer.value for layer in Layer],
        help="section to compile; default: kernel if the policy has one, else gates",
    )
    add_policy_target_arguments(parser, arch_help)


def load_target(arg: str | FilterInput, args: argparse.Namespace, verb: str) -> PolicyTarget:
    """Load the policy ``arg`` names (a path, ``-`` for stdin, a shipped name; see
    :mod:`callgate.cli.inputs`) and resolve the section the options name."""
    given = arg if isinstance(arg, FilterInput) else read_filter_input(arg)
    require_policy(given, verb)
    loaded = load_policy_input(given, **policy_target_kwargs(args))
    loaded.issue_warnings()  # as load_policy reports them
    layer = _layer(loaded.policy, args.layer)
    arch = _arch(layer, args)
    section = section_for(loaded.policy, layer, arch)
    unnumbered = sorted({n for rule in section.rules for n in rule.names} - set(arch.numbers))
    if layer is Layer.GATES and unnumbered:
        print(
            f"callgate {verb}: note: no number for app gate(s) {', '.join(unnumbered)}; their "
            "rules are left out. The runtime numbers app gates; list them in order with "
            "--gate-names to number them from 0x1000",
            file=sys.stderr,
        )
    return PolicyTarget(loaded, layer, arch, section, plan_section(section, arch))


def _oci(target: PolicyTarget) -> bytes:
    """The kernel section as a runc seccomp profile; what it cannot carry, as notes."""
    import json

    from callgate.policy.oci_export import export_oci

    if target.layer is not Layer.KERNEL:
        raise CompileUsageError("--format oci writes a kernel seccomp profile for runc; the "
                                "gates layer has none (use --layer kernel)")
    exported = export_oci(target.section, target.arch, target.loaded.policy.flags)
    for note in exported.notes:
        print(f"callgate compile: note: {note}", file=sys.stderr)
    return (json.dumps(exported.profile, indent=2) + "\n").encode()


def no_policy_options(args: argparse.Namespace, given: FilterInput) -> None:
    """Options that only mean something for a policy are an error with a program."""
    given_flags = [
        flag
        for flag, value in (("--layer", args.layer), ("--caps", args.caps),
                            ("--kernel-version", args.kernel_version),
                            ("--gate-names", args.gate_names))
        if value
    ]
    if given_flags:
        raise CliInputError(
            f"{', '.join(given_flags)} only apply to a policy, and {given.name} is read as a "
            "BPF program (.toml/.json files and files starting with '[' or '{' are policies)"
        )


def _compile(args: argparse.Namespace) -> int:
    target = load_target(args.policy, args, "compile")
    plan, arch = target.plan, target.arch
    fmt = args.format or ("raw" if args.output else "asm")
    if fmt == "oci":
        data = _oci(target)
    elif fmt == "pfc":
        data = render_pfc(plan).encode()
    else:
        data = render(compile_plan(plan), fmt, arch)
    if args.output and args.output != "-":
        try:
            with open(args.output, "wb") as out:
                out.write(data)
        except OSError as exc:
            raise CompileUsageError(f"cannot write {args.output}: {exc.strerror}") from None
        return 0
    if fmt == "raw" and sys.stdout.isatty():
        raise CompileUsageError(
            "refusing to write raw BPF bytes to a terminal; use -o FILE or --format asm"
        )
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0
