"""``callgate asm``, ``disasm`` and ``emu``: the classic-BPF teaching tools, seccomp-tools style.

Every verb reads a program file in any form (raw BPF, hex, assembly text; ``-`` is
stdin). ``emu`` runs the reference interpreter, which refuses exactly what the
kernel refuses, and prints the executed lines in listing layout followed by
``return ACTION at line NNNN``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callgate.arch import Arch
from callgate.asm.disassembler import disassemble, listing_lines, program_arch
from callgate.asm.formats import FORMATS, read_program, render
from callgate.asm.syntax import LINE_LABEL, LISTING_HEADER, choose_arch
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import ARG_COUNT, SeccompData
from callgate.bpf.verifier import VerifierError, verify
from callgate.errors import CallgateError


class CliInputError(CallgateError):
    """A file or argument the BPF verbs cannot use."""


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

    emu = subparsers.add_parser(
        "emu",
        help="run a filter on one syscall and show the path it takes",
        description="Emulate a filter on one seccomp_data record, like seccomp-tools emu. "
        "Programs the kernel would refuse are refused.",
    )
    emu.add_argument("file", metavar="PROG", help="raw BPF or assembly text; - for stdin")
    emu.add_argument("nr", metavar="NR|NAME", help="syscall (or gate) number or name")
    emu.add_argument("args", metavar="ARG", nargs="*", help="up to six syscall arguments")
    emu.add_argument(
        "-a",
        "--arch",
        help="architecture: its AUDIT_ARCH value goes into seccomp_data.arch and NAME is "
        "looked up in its table; default as for asm",
    )
    emu.add_argument("--ip", default="0", help="instruction_pointer (default 0)")
    emu.add_argument("-q", "--quiet", action="store_true", help="print only the final return line")
    emu.set_defaults(func=_emu)


def _read(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CliInputError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_program_file(path: str, arch: str | None) -> tuple[list[Insn], Arch]:
    """A program file in any form, and the arch its names resolve against (``--arch`` first)."""
    name = "<stdin>" if path == "-" else path
    program = read_program(_read(path), arch, name)
    return program, choose_arch(arch, program_arch(program) if arch is None else None)


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
    """A syscall (or gate) given by number, or by name on ``arch``."""
    try:
        int(text, 0)
    except ValueError:
        return arch.number(text)
    return parse_integer(text, "syscall number", 32)


def call_args(texts: list[str]) -> list[int]:
    """Up to six 64-bit arguments, as :func:`parse_integer` reads them."""
    if len(texts) > ARG_COUNT:
        raise CliInputError(f"a syscall has at most {ARG_COUNT} arguments, got {len(texts)}")
    return [parse_integer(text, f"argument {i}", 64) for i, text in enumerate(texts)]


def _emu(args: argparse.Namespace) -> int:
    program, arch = _load(args)
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
    if not args.quiet:
        lines = listing_lines(program, arch)
        sys.stdout.write(LISTING_HEADER)
        sys.stdout.write("".join(lines[pc] + "\n" for pc in execution.path))
        sys.stdout.write("\n")
    sys.stdout.write(
        f"return {format_action(execution.ret)} at line {LINE_LABEL.format(line=last)}\n"
    )
    return 0
