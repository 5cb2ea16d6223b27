"""Disassembler: seccomp-tools' listings, exact encodings for odd instructions, and arch names.

Expected listings are seccomp-tools' own (spec/disasm/disasm_spec.rb); the program
bytes are rebuilt from the listing's raw columns with ``struct``, so neither side
of the comparison comes from callgate.
"""

from __future__ import annotations

import struct

import pytest

from callgate.arch import get_arch, known_arches
from callgate.asm.assembler import assemble
from callgate.asm.disassembler import disassemble, program_arch, statements
from callgate.bpf.insn import Insn, unpack


def bytes_of_listing(listing: str) -> bytes:
    """The program a seccomp-tools listing shows, from its CODE JT JF K columns."""
    out = b""
    for line in listing.splitlines()[2:]:
        code, jt, jf, k = (int(f, 16) for f in line.split()[1:5])
        out += struct.pack("<HBBI", code, jt, jf, k)
    return out


TWCTF_2016_DIARY = """\
 line  CODE  JT   JF      K
=================================
 0000: 0x20 0x00 0x00 0x00000000  A = sys_number
 0001: 0x15 0x00 0x01 0x00000002  if (A != open) goto 0003
 0002: 0x06 0x00 0x00 0x00000000  return KILL
 0003: 0x15 0x00 0x01 0x00000101  if (A != openat) goto 0005
 0004: 0x06 0x00 0x00 0x00000000  return KILL
 0005: 0x15 0x00 0x01 0x0000003b  if (A != execve) goto 0007
 0006: 0x06 0x00 0x00 0x00000000  return KILL
 0007: 0x15 0x00 0x01 0x00000038  if (A != clone) goto 0009
 0008: 0x06 0x00 0x00 0x00000000  return KILL
 0009: 0x15 0x00 0x01 0x00000039  if (A != fork) goto 0011
 0010: 0x06 0x00 0x00 0x00000000  return KILL
 0011: 0x15 0x00 0x01 0x0000003a  if (A != vfork) goto 0013
 0012: 0x06 0x00 0x00 0x00000000  return KILL
 0013: 0x15 0x00 0x01 0x00000055  if (A != creat) goto 0015
 0014: 0x06 0x00 0x00 0x00000000  return KILL
 0015: 0x15 0x00 0x01 0x00000142  if (A != execveat) goto 0017
 0016: 0x06 0x00 0x00 0x00000000  return KILL
 0017: 0x06 0x00 0x00 0x7fff0000  return ALLOW
"""

LIBSECCOMP = """\
 line  CODE  JT   JF      K
=================================
 0000: 0x20 0x00 0x00 0x00000004  A = arch
 0001: 0x15 0x00 0x08 0xc000003e  if (A != ARCH_X86_64) goto 0010
 0002: 0x20 0x00 0x00 0x00000000  A = sys_number
 0003: 0x35 0x06 0x00 0x40000000  if (A >= 0x40000000) goto 0010
 0004: 0x15 0x04 0x00 0x00000001  if (A == write) goto 0009
 0005: 0x15 0x03 0x00 0x00000003  if (A == close) goto 0009
 0006: 0x15 0x02 0x00 0x00000020  if (A == dup) goto 0009
 0007: 0x15 0x01 0x00 0x0000003c  if (A == exit) goto 0009
 0008: 0x06 0x00 0x00 0x00050005  return ERRNO(5)
 0009: 0x06 0x00 0x00 0x7fff0000  return ALLOW
 0010: 0x06 0x00 0x00 0x00000000  return KILL
"""

DEF_CON_2020_BDOOOS_AARCH64 = """\
 line  CODE  JT   JF      K
=================================
 0000: 0x20 0x00 0x00 0x00000004  A = arch
 0001: 0x15 0x00 0x10 0xc00000b7  if (A != ARCH_AARCH64) goto 0018
 0002: 0x20 0x00 0x00 0x00000000  A = sys_number
 0003: 0x15 0x0d 0x00 0x0000001d  if (A == ioctl) goto 0017
 0004: 0x15 0x0c 0x00 0x0000003f  if (A == read) goto 0017
 0005: 0x15 0x0b 0x00 0x00000040  if (A == write) goto 0017
 0006: 0x15 0x0a 0x00 0x00000049  if (A == ppoll) goto 0017
 0007: 0x15 0x09 0x00 0x0000005e  if (A == exit_group) goto 0017
 0008: 0x15 0x08 0x00 0x00000062  if (A == futex) goto 0017
 0009: 0x15 0x07 0x00 0x00000084  if (A == sigaltstack) goto 0017
 0010: 0x15 0x06 0x00 0x00000086  if (A == rt_sigaction) goto 0017
 0011: 0x15 0x05 0x00 0x0000008b  if (A == rt_sigreturn) goto 0017
 0012: 0x15 0x04 0x00 0x000000ce  if (A == sendto) goto 0017
 0013: 0x15 0x03 0x00 0x000000cf  if (A == recvfrom) goto 0017
 0014: 0x15 0x02 0x00 0x000000d0  if (A == setsockopt) goto 0017
 0015: 0x15 0x01 0x00 0x000000d7  if (A == munmap) goto 0017
 0016: 0x06 0x00 0x00 0x80000000  return KILL_PROCESS
 0017: 0x06 0x00 0x00 0x7fff0000  return ALLOW
 0018: 0x06 0x00 0x00 0x00000000  return KILL
"""

# spec 'args of unknown syscall': a compared nr with no name prints in hex.
UNKNOWN_SYSCALL = """\
 line  CODE  JT   JF      K
=================================
 0000: 0x20 0x00 0x00 0x00000000  A = sys_number
 0001: 0x15 0x00 0x01 0x000003e7  if (A != 0x3e7) goto 0003
 0002: 0x20 0x00 0x00 0x00000010  A = args[0]
 0003: 0x06 0x00 0x00 0x00000000  return KILL
"""


@pytest.mark.parametrize(
    ("listing", "arch"),
    [
        (TWCTF_2016_DIARY, "x86_64"),
        (LIBSECCOMP, "x86_64"),
        (DEF_CON_2020_BDOOOS_AARCH64, "aarch64"),
        (UNKNOWN_SYSCALL, "x86_64"),
    ],
)
def test_listing_matches_seccomp_tools(listing, arch):
    program = unpack(bytes_of_listing(listing))
    assert disassemble(program, arch) == listing
    assert assemble(listing, arch) == program


def test_arch_is_inferred_from_the_arch_check():
    program = unpack(bytes_of_listing(DEF_CON_2020_BDOOOS_AARCH64))
    assert program_arch(program).name == "aarch64"
    assert disassemble(program) == DEF_CON_2020_BDOOOS_AARCH64


def test_sections_for_other_arches_use_qualified_names():
    text = """
        A = arch
        if (A != ARCH_X86_64) goto i386
        A = sys_number
        if (A == 1) goto allow else goto dead
    i386:
        if (A != ARCH_I386) goto dead
        A = sys_number
        if (A == 1) goto allow else goto dead
    dead: return KILL
    allow: return ALLOW
    """
    program = assemble(text, "x86_64")
    assert program_arch(program) is None  # two arches: no single one
    lines = statements(program, "x86_64")
    assert lines[3] == "if (A == write) goto 0008 else goto 0007"
    assert lines[6] == "if (A == x86.exit) goto 0008"
    assert assemble(disassemble(program, "x86_64"), "x86_64") == program


def test_only_equality_on_sys_number_gets_names():
    text = "A = sys_number\nif (A > 1) goto r\nA = arch\nif (A > 3) goto r\nA = 0\nr: return A"
    program = assemble(text, "x86_64")
    assert statements(program, "x86_64")[1] == "if (A > 0x1) goto 0005"
    assert statements(program, "x86_64")[3] == "if (A > 0x3) goto 0005"


def test_else_jump_spellings_follow_seccomp_tools():
    # spec 'else jmp': jt == 0 prints the negated comparison.
    program = [Insn(c, 0, 1, 0) for c in (0x15, 0x25, 0x35, 0x45)] + [Insn(6)] * 2
    assert statements(program, "x86_64")[:4] == [
        "if (A != 0) goto 0002",
        "if (A <= 0) goto 0003",
        "if (A < 0) goto 0004",
        "if (!(A & 0)) goto 0005",
    ]


def test_equal_targets_keep_the_condition():
    # seccomp-tools prints `goto T` for jt == jf, which would re-assemble as JA.
    program = [Insn(0x15, 1, 1, 7), Insn(0x15, 0, 0, 7), Insn(6), Insn(6)]
    assert statements(program, "x86_64")[:2] == [
        "if (A == 7) goto 0002 else goto 0002",
        "if (A != 7) goto 0002",
    ]
    assert assemble(disassemble(program, "x86_64"), "x86_64") == program


@pytest.mark.parametrize(
    ("insn", "reason"),
    [
        (Insn(0x80, 0xDE, 0x38, 0xBB), "ignores them"),  # A = len with stray fields
        (Insn(0x1D, 0, 0, 0xD4), "ignores them"),  # A == X with k set
        (Insn(0x05, 1, 2, 0), "ignores them"),  # JA with jt/jf
        (Insn(0x16, 0, 0, 5), "ignores them"),  # RET A with k
        (Insn(0x84, 0, 0, 1), "ignores them"),  # NEG with k
        (Insn(0x0E, 0, 0, 0), "unknown return source"),
        (Insn(0x55, 0, 0, 0), "unknown jump operation"),
        (Insn(0xB4, 0, 0, 0), "unknown ALU operation"),
        (Insn(0x28, 0, 0, 0), "half word or byte"),
        (Insn(0x40, 0, 0, 0), "indirect"),
        (Insn(0xB1, 0, 0, 0), "MSH"),
        (Insn(0x60, 0, 0, 16), "16 words"),
        (Insn(0x02, 0, 0, 99), "16 words"),
        (Insn(0x0A, 0, 0, 0), "store"),
        (Insn(0x17, 0, 0, 0), "misc"),
        (Insn(0x100, 0, 0, 0), "8 bits"),
        (Insn(0x15, 9, 0, 0), "past the end"),
        (Insn(0x05, 0, 0, 0xFFFFFFFF), "past the end"),
    ],
)
def test_odd_encodings_print_as_insn_and_reassemble(insn, reason):
    program = [insn, Insn(6)]
    text = statements(program, "x86_64")[0]
    assert text.startswith(".insn ")
    assert reason in text
    assert assemble(disassemble(program, "x86_64"), "x86_64") == program


def test_gate_arch_names():
    text = "A = arch\nif (A != ARCH_CALLGATE) goto no\nA = sys_number\n"
    text += "if (A == fd_write) goto yes\nno: return ERRNO(EPERM)\nyes: return ALLOW\n"
    program = assemble(text)
    assert program_arch(program).name == "callgate"
    assert statements(program)[3] == "if (A == fd_write) goto 0005"
    assert statements(program)[4] == "return ERRNO(63)"  # WASI's EPERM
    assert assemble(disassemble(program)) == program


def test_a_comparison_after_tax_and_mem_keeps_its_source():
    text = "A = sys_number\nmem[1] = A\nA = 0\nA = mem[1]\nif (A == openat) goto r\nA = 1\n"
    text += "r: return A"
    assert statements(assemble(text, "x86_64"), "x86_64")[4] == "if (A == openat) goto 0006"


def test_empty_program_has_only_the_header():
    assert disassemble([], "x86_64").count("\n") == 2


def test_arch_inference_agrees_with_what_the_listing_prints():
    # The arch comparison jumps past the end, so it prints as .insn without ARCH_AARCH64;
    # the listing must not then use aarch64 names the assembler cannot know about.
    program = [
        Insn(0x20, 0, 0, 4),  # A = arch
        Insn(0x15, 9, 0, 0xC00000B7),  # if (A == ARCH_AARCH64) goto <past the end>
        Insn(0x20, 0, 0, 0),  # A = sys_number
        Insn(0x15, 1, 0, 63),  # if (A == 63) ...
        Insn(0x06, 0, 0, 0),
        Insn(0x06, 0, 0, 0x7FFF0000),
    ]
    assert program_arch(program) is None
    assert assemble(disassemble(program)) == program


@pytest.mark.parametrize("arch_name", known_arches())
def test_every_name_in_every_table_prints_and_reads_back(arch_name):
    arch = get_arch(arch_name)
    numbers = sorted(set(arch.numbers.values()))
    program = [Insn(0x20, 0, 0, 0), *(Insn(0x15, 1, 0, nr) for nr in numbers), Insn(6), Insn(6)]
    texts = statements(program, arch_name)
    for nr, text in zip(numbers, texts[1:], strict=False):
        assert text.startswith(f"if (A == {arch.name_of(nr)}) goto "), text
    assert assemble(disassemble(program, arch_name), arch_name) == program
