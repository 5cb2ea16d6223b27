"""Checking a filter written by hand: it assembles, the kernel would take it, and it
answers a table of calls as asked - each failure with its path, as `callgate emu` shows it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from callgate.arch import Arch, get_arch
from callgate.asm.assembler import AsmError, assemble
from callgate.asm.disassembler import statements
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.bpf.verifier import VerifierError, verify
from callgate.teach.labs.base import Check, Stop, failed, passed

#: Failing cases whose whole path is shown; the others name the emu command.
SHOW_PATHS = 3


@dataclass(frozen=True)
class Case:
    """One call and the verdict the lab asks for. ``call_arch`` names another ABI for the
    record (its AUDIT_ARCH value; ``name`` looked up in its table)."""

    label: str
    name: str
    args: tuple[int, ...]
    expected: int
    call_arch: str | None = None
    nr: int | None = None  # overrides the number ``name`` has (x32 numbers)


def assembled(path: Path, arch: Arch) -> Iterator[Check | list[Insn]]:
    """Yield the checks that it assembles and verifies, then the program itself."""
    try:
        program = assemble(path.read_text(), arch, filename=path.name)
    except AsmError as exc:
        raise Stop(failed(f"{path.name} assembles", *str(exc).splitlines(),
                          "the syntax is seccomp-tools': see docs/bpf.md, or `callgate "
                          "disasm` any compiled policy for examples")) from None
    except UnicodeDecodeError as exc:
        raise Stop(failed(f"{path.name} is text", str(exc))) from None
    yield passed(f"{path.name} assembles ({len(program)} instructions)")
    try:
        verify(program)
    except VerifierError as exc:
        raise Stop(failed("the kernel's verifier would accept it", str(exc))) from None
    yield passed("the kernel's verifier would accept it")
    yield program


def record(case: Case, arch: Arch) -> SeccompData:
    on = get_arch(case.call_arch) if case.call_arch else arch
    nr = case.nr if case.nr is not None else on.number(case.name)
    return SeccompData.make(nr, on.audit_arch, case.args)


def emu_command(path: Path, case: Case) -> str:
    words = ["callgate emu", path.name, hex(case.nr) if case.nr is not None else case.name,
             *(str(a) if a < 0x1000 else hex(a) for a in case.args)]
    if case.call_arch:
        words[2:2] = ["--arch", case.call_arch]
    return " ".join(words)


def run_cases(path: Path, program: Sequence[Insn], arch: Arch,
              cases: Sequence[Case]) -> Iterator[Check]:
    """One check per case; a failure shows the path the program took."""
    listing = statements(program, arch)
    shown = 0
    for case in cases:
        execution = interpret(program, record(case, arch))
        want, got = format_action(case.expected), format_action(execution.ret)
        name = f"{case.label}: {want}"
        if execution.ret == case.expected:
            yield passed(name)
            continue
        where = f"your program returned {got} at line {execution.path[-1]:04d}"
        if shown >= SHOW_PATHS:
            yield failed(name, f"{where}: {emu_command(path, case)} shows the path")
            continue
        shown += 1
        taken = [f"{pc:04d}: {listing[pc]}" for pc in execution.path]
        yield failed(name, f"{where}; the path it took:", *(f"  {line}" for line in taken),
                     f"see it yourself: {emu_command(path, case)}")
