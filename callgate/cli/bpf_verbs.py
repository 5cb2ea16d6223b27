"""``callgate asm``, ``disasm`` and ``emu``: the classic-BPF teaching tools, seccomp-tools style.

Every verb reads a program file in any form (raw BPF, hex, assembly text; ``-`` is
stdin). ``emu`` also takes a policy, compiled as ``callgate compile`` would (the rule
telling the two apart is :mod:`callgate.cli.inputs`'), runs the reference interpreter,
which refuses exactly what the kernel refuses, and prints the executed lines in listing
layout followed by ``return ACTION at line NNNN`` (or, with ``--json``, one JSON
document: :mod:`callgate.cli.reports`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callgate.arch import Arch, UnknownNameError
from callgate.asm.disassembler import disassemble, listing_lines
from callgate.asm.formats import FORMATS, render
from callgate.asm.syntax import LINE_LABEL, LISTING_HEADER
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import ARG_COUNT, SeccompData
from callgate.bpf.verifier import VerifierError, verify
from callgate.cli.completion_verb import completes_filters
from callgate.cli.inputs import (
    CliInputError as CliInputError,  # re-exported: the verbs' input error
    FilterInput,
    load_program_input,
    read_filter_input,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    arch_help = (
        "architecture whose names to use (x86_64, aarch64, callgate, …); default: the one "
        "the program compares arch against, else this machine's"
    )
    asm = subparsers.add_parser(
        "asm",
        help="assemble seccomp-tools syntax into BPF",
        description="Assemble a filter written in seccomp-tools' syntax.",
    )
    asm.add_argument("file", metavar="FILE", help="assembly text (or raw/hex BPF); - for stdin")
    asm.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    asm.add_argument(
        "-f", "--format", choices=FORMATS, default="raw", help="output format (default: raw)"
    )
    asm.add_argument("-a", "--arch", help=arch_help)
    asm.set_defaults(func=_asm)

    dis = subparsers.add_parser(
        "disasm",
        help="disassemble BPF into a listing that re-assembles",
        description="Print a filter as seccomp-tools' listing; `callgate asm` reads it back "
        "to the same bytes.",
    )
    dis.add_argument("file", metavar="FILE", help="raw BPF (or hex, or assembly); - for stdin")
    dis.add_argument("-a", "--arch", help=arch_help)
    dis.set_defaults(func=_disasm)

    from callgate.cli.compile_verb import add_section_arguments

    emu = subparsers.add_parser(
        "emu",
        help="run a filter (a program or a policy) on one syscall and show the path it takes",
        description="Emulate a filter on one seccomp_data record, like seccomp-tools emu. "
        "PROG|POLICY is a program (raw BPF, hex or assembly) or a policy, compiled as "
        "`callgate compile` would: .toml/.json files and the shipped names (default, "
        "default+fs, allow-all) are policies, .bpf/.asm/.hex files programs, and any other "
        "file a policy if it starts with '[' or '{'. Programs the kernel would refuse are "
        "refused.",
    )
    completes_filters(emu.add_argument("file", metavar="PROG|POLICY",
                                       help="a program or a policy (see above); - for stdin"))
    emu.add_argument("nr", metavar="NR|NAME", help="syscall (or gate) number or name")
    emu.add_argument("args", metavar="ARG", nargs="*", help="up to six syscall arguments")
    add_section_arguments(emu, arch_help="architecture: its AUDIT_ARCH value goes into "
                          "seccomp_data.arch and NAME is looked up in its table; for a "
                          "program, default as for asm; for a policy's kernel section, this "
                          "machine's")
    emu.add_argument("--ip", default="0", help="instruction_pointer (default 0)")
    emu.add_argument("-q", "--quiet", action="store_true", help="print only the final return line")
    emu.add_argument("--json", action="store_true",
                     help="print the run as one JSON document (schema callgate.emu/1)")
    emu.set_defaults(func=_emu)


def load_program_file(path: str, arch: str | None) -> tuple[list[Insn], Arch]:
    """A program file in any form, and the arch its names resolve against (``--arch`` first).

    A policy (by :mod:`callgate.cli.inputs`' rule) is refused, naming the verb that
    compiles it.
    """
    given = read_filter_input(path)
    if given.is_policy:
        raise CliInputError(f"{given.name} is a policy, not a BPF program; `callgate compile "
                            f"{path} --format asm` prints its program")
    return load_program_input(given, arch)


def _load(args: argparse.Namespace) -> tuple[list[Insn], Arch]:
    return load_program_file(args.file, args.arch)


def _asm(args: argparse.Namespace) -> int:
    program, arch = _load(args)
    out = render(program, args.format, arch)
    if args.output:
        try:
            Path(args.output).write_bytes(out)
        except OSError as exc:
            raise CliInputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        return 0
    if args.format == "raw" and sys.stdout.isatty():
        raise CliInputError(
            "refusing to write raw BPF to a terminal; use -o OUT, or --format hex|c|asm"
        )
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


def _disasm(args: argparse.Namespace) -> int:
    program, arch = _load(args)
    sys.stdout.write(disassemble(program, arch))
    return 0


def parse_integer(text: str, what: str, bits: int) -> int:
    """Decimal or 0x-hex, negative allowed (two's complement); must fit ``bits`` bits."""
    try:
        value = int(text, 0)
    except ValueError:
        raise CliInputError(f"{what} {text!r} is not a number (decimal or 0x-hex)") from None
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise CliInputError(f"{what} {text!r} does not fit in {bits} bits")
    return value


def call_number(text: str, arch: Arch) -> int:
    """A syscall (or gate) given by number, or by name on ``arch`` (an unknown name says
    which names are close, and for gates how app-defined gates get numbers)."""
    try:
        int(text, 0)
    except ValueError:
        try:
            return arch.number(text)
        except UnknownNameError as exc:
            hint = ("; app-defined gates have numbers only when --gate-names lists them"
                    if arch.is_gate_layer else "")
            raise CliInputError(f"{exc}{hint}") from None
    return parse_integer(text, "syscall number", 32)


def call_args(texts: list[str]) -> list[int]:
    """Up to six 64-bit arguments, as :func:`parse_integer` reads them."""
    if len(texts) > ARG_COUNT:
        raise CliInputError(f"a syscall has at most {ARG_COUNT} arguments, got {len(texts)}")
    return [parse_integer(text, f"argument {i}", 64) for i, text in enumerate(texts)]


def filter_program(given: FilterInput, args: argparse.Namespace,
                   verb: str) -> tuple[list[Insn], Arch, str]:
    """The program a filter input stands for, its arch, and a title naming both: a
    program as it is, a policy's section compiled as ``callgate compile`` would."""
    from callgate.cli.compile_verb import load_target, no_policy_options
    from callgate.policy.compiler import compile_plan

    if given.is_policy:
        target = load_target(given, args, verb)
        title = f"{given.name} [{target.layer.value}] for {target.arch.name}"
        return compile_plan(target.plan), target.arch, title
    no_policy_options(args, given)
    program, arch = load_program_input(given, args.arch)
    return program, arch, f"{given.name} ({arch.name} names)"


def _emu(args: argparse.Namespace) -> int:
    given = read_filter_input(args.file)
    program, arch, title = filter_program(given, args, "emu")
    data = SeccompData.make(
        call_number(args.nr, arch),
        arch.audit_arch,
        call_args(args.args),
        parse_integer(args.ip, "instruction pointer", 64) & ((1 << 64) - 1),
    )
    try:
        verify(program)
    except VerifierError as exc:
        raise CliInputError(f"the kernel would refuse this program: {exc}") from None
    execution = interpret(program, data)
    last = execution.path[-1]
    if args.json:
        from callgate.cli.reports import emu_report, write_json

        write_json(emu_report(given, program, arch, data, title))
        return 0
    if not args.quiet:
        lines = listing_lines(program, arch)
        sys.stdout.write(LISTING_HEADER)
        sys.stdout.write("".join(lines[pc] + "\n" for pc in execution.path))
        sys.stdout.write("\n")
    sys.stdout.write(
        f"return {format_action(execution.ret)} at line {LINE_LABEL.format(line=last)}\n"
    )
    return 0
