"""The vocabulary the assembler and the disassembler share: seccomp-tools' assembly syntax.

One table per idea, read in both directions: ALU operator spellings, comparison
spellings (and the negated forms the disassembler prints when a jump falls
through on true), the names of ``seccomp_data`` words, the listing layout, and how
constants are named (syscalls, ``ARCH_*`` values, errno names).
"""

from __future__ import annotations

import errno as _host_errno
import re

from callgate.arch import (
    Arch,
    UnknownArchError,
    get_arch,
    native_arch,
)
from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.bpf import opcodes as op
from callgate.bpf.actions import ActionError, parse_action
from callgate.bpf.seccomp_data import (
    ARG_COUNT,
    OFF_ARCH,
    OFF_IP,
    OFF_IP_HI,
    OFF_NR,
    arg_hi,
    arg_lo,
)

# ``A op= operand``. ``%=`` is classic BPF's MOD: seccomp-tools has no spelling for it,
# callgate adds one so every ALU opcode reads as text (the kernel's seccomp rejects it).
ALU_OPS: dict[str, int] = {
    "+": op.BPF_ADD,
    "-": op.BPF_SUB,
    "*": op.BPF_MUL,
    "/": op.BPF_DIV,
    "|": op.BPF_OR,
    "&": op.BPF_AND,
    "<<": op.BPF_LSH,
    ">>": op.BPF_RSH,
    "^": op.BPF_XOR,
    "%": op.BPF_MOD,
}
ALU_SYMBOLS: dict[int, str] = {code: sym for sym, code in ALU_OPS.items()}
# seccomp-tools prints shift counts in decimal and every other ALU constant in hex.
DECIMAL_ALU_OPS = frozenset({op.BPF_LSH, op.BPF_RSH})

# ``if (A op k)``: the jump opcode, and whether the spelling is the negation of it
# (the kernel has no JNE/JLT/JLE: ``!=``, ``<``, ``<=`` swap the true and false targets).
COMPARISONS: dict[str, tuple[int, bool]] = {
    "==": (op.BPF_JEQ, False),
    "!=": (op.BPF_JEQ, True),
    ">": (op.BPF_JGT, False),
    "<=": (op.BPF_JGT, True),
    ">=": (op.BPF_JGE, False),
    "<": (op.BPF_JGE, True),
    "&": (op.BPF_JSET, False),
}
COMPARE_SYMBOLS: dict[int, str] = {code: s for s, (code, neg) in COMPARISONS.items() if not neg}
NEGATED_SYMBOLS: dict[int, str] = {code: s for s, (code, neg) in COMPARISONS.items() if neg}

# Names of the 32-bit words of ``seccomp_data`` (the right-hand side of ``A = …``).
DATA_WORDS: dict[str, int] = {
    "sys_number": OFF_NR,
    "arch": OFF_ARCH,
    "instruction_pointer": OFF_IP,
}
HIGH_HALF_SHIFT = 32  # ``args[i] >> 32`` names the high word of an argument


def data_spelling(offset: int) -> str:
    """How the disassembler names the word at ``offset`` (seccomp-tools' spelling)."""
    if offset == OFF_IP_HI:
        return "instruction_pointer >> 32"
    for name, off in DATA_WORDS.items():
        if off == offset:
            return name
    for i in range(ARG_COUNT):
        if offset == arg_lo(i):
            return f"args[{i}]"
        if offset == arg_hi(i):
            return f"args[{i}] >> 32"
    return f"data[{offset}]"


# Words with a fixed meaning, case-insensitive as in seccomp-tools.
KEYWORDS = frozenset(
    "a x if else return mem args args_h data len sys_number arch instruction_pointer "
    "goto jmp jump".split()
)
GOTO_WORDS = frozenset({"goto", "jmp", "jump"})
NEXT_LABEL = "next"  # reserved target: the following instruction
RAW_DIRECTIVE = ".insn"  # ``.insn CODE, JT, JF, K``: any instruction, field by field

# The listing layout (`` 0004: 0x15 0x00 0x05 0xc000003e  if (A != ARCH_X86_64) goto 0010``).
LISTING_HEADER = " line  CODE  JT   JF      K\n=================================\n"
LISTING_LINE = " {line:04d}: 0x{code:02x} 0x{jt:02x} 0x{jf:02x} 0x{k:08x}  {text}"
LINE_LABEL = "{line:04d}"
# What the assembler strips so a listing reads back: the header lines and, after a
# line label, the four raw columns (the text after them is what gets assembled).
LISTING_HEADER_LINES = frozenset(line.strip() for line in LISTING_HEADER.splitlines())
LISTING_COLUMNS = re.compile(
    r"^(\s*\w+:)(\s+0x[0-9a-fA-F]+\s+0x[0-9a-fA-F]+\s+0x[0-9a-fA-F]+\s+0x[0-9a-fA-F]+)(?=\s|$)"
)


def action_value(word: str) -> int | None:
    """The return value an action word names (``ALLOW``, ``KILL_THREAD`` …), else None.

    As in seccomp-tools, actions are upper case only: ``return kill`` is the syscall.
    """
    if not word.isupper():
        return None
    try:
        return parse_action(word)
    except ActionError:
        return None


# ---------------------------------------------------------------------------
# Constants by name.

_ARCH_PREFIX = "ARCH_"
# The kernel names x86's audit arch AUDIT_ARCH_I386; every other name is callgate's.
_AUDIT_SPELLING = {"x86": "I386"}


def arch_constant_name(arch: Arch) -> str:
    """``ARCH_X86_64``-style name of an architecture's ``AUDIT_ARCH`` value."""
    return _ARCH_PREFIX + _AUDIT_SPELLING.get(arch.name, arch.name.upper())


def arch_from_constant(word: str) -> Arch | None:
    """The architecture an ``ARCH_*`` word names (case-insensitive, aliases allowed)."""
    if not word.upper().startswith(_ARCH_PREFIX):
        return None
    try:
        return get_arch(word[len(_ARCH_PREFIX) :])
    except UnknownArchError:
        return None


def errno_value(arch: Arch, word: str) -> int | None:
    """An errno name's number: WASI's numbering for the gate arch, Linux's otherwise."""
    if not (word.isupper() and word.startswith("E")):
        return None
    if arch.is_gate_layer:
        return WASI_ERRNO.get(word)
    value = getattr(_host_errno, word, None)
    return value if isinstance(value, int) else None


def syscall_value(arch: Arch, word: str) -> int | None:
    """A syscall (or gate) name's number, plain for ``arch`` or qualified ``x86.read``."""
    arch_name, dot, name = word.rpartition(".")
    if dot:
        try:
            arch = get_arch(arch_name)
        except UnknownArchError:
            return None
    return arch.numbers.get(name)


# x86_64 kernels also run x32 syscalls (nr | X32_SYSCALL_BIT) under AUDIT_ARCH_X86_64.
_SHARED_AUDIT_ARCH = {"x86_64": "x32"}


def syscall_spelling(nr: int, arch: Arch, listing_arch: Arch) -> str | None:
    """Name of syscall ``nr`` on ``arch``, qualified when ``arch`` is not the listing's."""
    name = arch.name_of(nr)
    if name is None:
        sibling = _SHARED_AUDIT_ARCH.get(arch.name)
        return syscall_spelling(nr, get_arch(sibling), listing_arch) if sibling else None
    return name if arch.name == listing_arch.name else f"{arch.name}.{name}"


def choose_arch(explicit: Arch | str | None, inferred: Arch | None) -> Arch:
    """The arch names resolve against: ``--arch``, else what the program checks, else native."""
    if isinstance(explicit, Arch):
        return explicit
    if explicit is not None:
        return get_arch(explicit)
    if inferred is not None:
        return inferred
    try:
        return native_arch()
    except UnknownArchError as exc:
        raise UnknownArchError(f"{exc}; pass --arch to choose one") from None
