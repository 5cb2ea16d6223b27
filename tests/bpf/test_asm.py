"""Assembler against encodings known independently of callgate.

Expected bytes come from ``<linux/filter.h>`` macros worked out by hand (written as
hex literals, e.g. ``BPF_LD|BPF_W|BPF_ABS`` = 0x00|0x00|0x20 = 0x20), from
seccomp-tools' own spec listings, and from libseccomp's ``export_bpf``.
"""

from __future__ import annotations

import errno
import tempfile

import pytest
from conftest import require

from callgate.asm.assembler import AsmError, assemble, text_arch
from callgate.bpf.insn import Insn, pack

try:
    import pyseccomp
except (ImportError, OSError):  # OSError: the library is missing libseccomp.so
    pyseccomp = None


def one(text: str, arch: str = "x86_64") -> tuple[int, int, int, int]:
    program = assemble(text, arch)
    assert len(program) == 1
    return tuple(program[0])


# (statement, (code, jt, jf, k)) with code from <linux/filter.h> by hand.
KERNEL_MACROS = [
    # BPF_STMT(BPF_LD|BPF_W|BPF_ABS, offsetof(struct seccomp_data, ...))
    ("A = sys_number", (0x20, 0, 0, 0)),
    ("A = arch", (0x20, 0, 0, 4)),
    ("A = instruction_pointer", (0x20, 0, 0, 8)),
    ("A = instruction_pointer >> 32", (0x20, 0, 0, 12)),
    ("A = args[0]", (0x20, 0, 0, 16)),
    ("A = args[1]", (0x20, 0, 0, 24)),
    ("A = args[5]", (0x20, 0, 0, 56)),
    ("A = args[2] >> 32", (0x20, 0, 0, 36)),
    ("A = args_h[2]", (0x20, 0, 0, 36)),
    ("A = args_h[5]", (0x20, 0, 0, 60)),
    ("A = data[44]", (0x20, 0, 0, 44)),
    ("A = data[0x3]", (0x20, 0, 0, 3)),
    # BPF_LD|BPF_IMM, BPF_LD|BPF_W|BPF_LEN, BPF_LD|BPF_MEM, BPF_MISC|BPF_TXA
    ("A = 123", (0x00, 0, 0, 123)),
    ("A = -1", (0x00, 0, 0, 0xFFFFFFFF)),
    ("A = (0x10)", (0x00, 0, 0, 16)),
    ("A = len", (0x80, 0, 0, 0)),
    ("A = mem[3]", (0x60, 0, 0, 3)),
    ("A = X", (0x87, 0, 0, 0)),
    # BPF_LDX variants and BPF_MISC|BPF_TAX
    ("X = 64", (0x01, 0, 0, 64)),
    ("X = len", (0x81, 0, 0, 0)),
    ("X = mem[15]", (0x61, 0, 0, 15)),
    ("X = arch", (0x21, 0, 0, 4)),
    ("X = A", (0x07, 0, 0, 0)),
    # BPF_ST, BPF_STX
    ("mem[0] = A", (0x02, 0, 0, 0)),
    ("mem[0xf] = X", (0x03, 0, 0, 15)),
    # BPF_ALU|op|BPF_K and |BPF_X
    ("A += 0x31337", (0x04, 0, 0, 0x31337)),
    ("A += X", (0x0C, 0, 0, 0)),
    ("A -= 1", (0x14, 0, 0, 1)),
    ("A -= X", (0x1C, 0, 0, 0)),
    ("A *= 7", (0x24, 0, 0, 7)),
    ("A *= X", (0x2C, 0, 0, 0)),
    ("A /= 2", (0x34, 0, 0, 2)),
    ("A /= X", (0x3C, 0, 0, 0)),
    ("A |= 8", (0x44, 0, 0, 8)),
    ("A |= X", (0x4C, 0, 0, 0)),
    ("A &= 0xfff", (0x54, 0, 0, 0xFFF)),
    ("A &= X", (0x5C, 0, 0, 0)),
    ("A <<= 1", (0x64, 0, 0, 1)),
    ("A <<= X", (0x6C, 0, 0, 0)),
    ("A >>= 9", (0x74, 0, 0, 9)),
    ("A >>= X", (0x7C, 0, 0, 0)),
    ("A = -A", (0x84, 0, 0, 0)),
    ("A %= 10", (0x94, 0, 0, 10)),
    ("A %= X", (0x9C, 0, 0, 0)),
    ("A ^= 0xff", (0xA4, 0, 0, 0xFF)),
    ("A ^= X", (0xAC, 0, 0, 0)),
    # BPF_RET|BPF_K with SECCOMP_RET_* from <linux/seccomp.h>, BPF_RET|BPF_A
    ("return ALLOW", (0x06, 0, 0, 0x7FFF0000)),
    ("return KILL", (0x06, 0, 0, 0)),
    ("return KILL_THREAD", (0x06, 0, 0, 0)),
    ("return KILL_PROCESS", (0x06, 0, 0, 0x80000000)),
    ("return TRAP", (0x06, 0, 0, 0x00030000)),
    ("return TRAP(5)", (0x06, 0, 0, 0x00030005)),
    ("return ERRNO(1)", (0x06, 0, 0, 0x00050001)),
    ("return ERRNO(EPERM)", (0x06, 0, 0, 0x00050001)),
    ("return ERRNO", (0x06, 0, 0, 0x00050000)),
    ("return TRACE(7)", (0x06, 0, 0, 0x7FF00007)),
    ("return LOG", (0x06, 0, 0, 0x7FFC0000)),
    ("return USER_NOTIF", (0x06, 0, 0, 0x7FC00000)),
    ("return 0x123", (0x06, 0, 0, 0x123)),
    ("return A", (0x16, 0, 0, 0)),
    # .insn writes any four fields
    (".insn 0x28, 1, 2, 0x10", (0x28, 1, 2, 0x10)),
    (".insn 0xffff, 0xff, 0xff, 0xffffffff", (0xFFFF, 0xFF, 0xFF, 0xFFFFFFFF)),
]


@pytest.mark.parametrize(("text", "expected"), KERNEL_MACROS)
def test_statement_encodings_match_the_kernel_macros(text, expected):
    assert one(text) == expected


def test_keywords_are_case_insensitive_but_actions_are_not():
    assert one("a = ARCH") == (0x20, 0, 0, 4)
    assert one("x = a") == (0x07, 0, 0, 0)
    # `kill` in lower case is the syscall (62 on x86_64), exactly as in seccomp-tools.
    assert one("return kill") == (0x06, 0, 0, 62)


# BPF_JUMP(BPF_JMP|op|src, k, jt, jf): negated spellings swap jt and jf.
JUMPS = """
    if (A == 1) goto l3 else goto l4
    if (A != X) goto l3
    if (A > 5) goto l3
    if (A <= 5) goto l3
    if (A >= X) goto l3 else goto l4
    if (A < 0x40) goto l4
    if (A & 4) goto l3
    if (!(A & X)) goto l3
    if (!(!(A == 2))) goto next else goto l4
    A == 3 ? l3 : next
    A != 3 ? l3 : l4
    A <= 3 ? next : l3
    goto l4
    l3: return ALLOW
    l4: return KILL
"""


def test_conditional_jumps_encode_op_source_and_offsets():
    program = assemble(JUMPS, "x86_64")
    assert [tuple(i) for i in program[:13]] == [
        (0x15, 12, 13, 1),
        (0x1D, 0, 11, 0),
        (0x25, 10, 0, 5),
        (0x25, 0, 9, 5),
        (0x3D, 8, 9, 0),
        (0x35, 0, 8, 0x40),
        (0x45, 6, 0, 4),
        (0x4D, 0, 5, 0),
        (0x15, 0, 5, 2),
        (0x15, 3, 0, 3),
        (0x15, 3, 2, 3),
        (0x25, 1, 0, 3),
        (0x05, 0, 0, 1),
    ]


def test_jt_equal_to_jf_is_kept_as_written():
    program = assemble("if (A == 9) goto t else goto t\nt: return A", "x86_64")
    assert tuple(program[0]) == (0x15, 0, 0, 9)
    program = assemble("if (A > 9) goto t else goto t\nA = 1\nt: return A", "x86_64")
    assert tuple(program[0]) == (0x25, 1, 1, 9)


def test_numbers_as_targets_follow_seccomp_tools():
    # A number that is a label is that label; a plain decimal that is not is a relative skip.
    program = assemble("goto 2\nA = 1\nA = 2\nreturn A", "x86_64")
    assert tuple(program[0]) == (0x05, 0, 0, 2)
    listing_like = "0000: if (A == 1) goto 0002\n0001: A = 1\n0002: return A\n"
    assert tuple(assemble(listing_like, "x86_64")[0]) == (0x15, 1, 0, 1)


def test_seccomp_tools_normal_asm_spec():
    # seccomp-tools spec/asm/asm_spec.rb 'normal-asm': the text and the bytes its listing shows.
    text = """
    # lines start with '#' are comments
      A = sys_number # here's a comment, too
      A >= 0x40000000 ? dead : next # 'next' is a keyword, denote the next instruction
      A == read ? ok : next # custom defined label 'dead' and 'ok'
      A == 1 ? ok : next # SYS_write = 1 in amd64
      return ERRNO(1)
    dead:
      return KILL
    ok:
      return ALLOW
    """
    assert [tuple(i) for i in assemble(text, "x86_64")] == [
        (0x20, 0x00, 0x00, 0x00000000),
        (0x35, 0x03, 0x00, 0x40000000),
        (0x15, 0x03, 0x00, 0x00000000),
        (0x15, 0x02, 0x00, 0x00000001),
        (0x06, 0x00, 0x00, 0x00050001),
        (0x06, 0x00, 0x00, 0x00000000),
        (0x06, 0x00, 0x00, 0x7FFF0000),
    ]


def test_seccomp_tools_arch_spec():
    # spec/asm/asm_spec.rb 'arch': the same text on amd64 and i386.
    rule = "A = execve\nA = sys_number\nA == read ? 1 : next\n"
    assert [tuple(i) for i in assemble(rule, "x86_64")] == [
        (0x00, 0, 0, 0x3B),
        (0x20, 0, 0, 0),
        (0x15, 1, 0, 0),
    ]
    assert [tuple(i) for i in assemble(rule, "i386")] == [
        (0x00, 0, 0, 0x0B),
        (0x20, 0, 0, 0),
        (0x15, 1, 0, 3),
    ]


def test_seccomp_tools_compiler_spec_ternary():
    # spec/asm/compiler_spec.rb 'accepts ternary', expected text converted to fields by hand.
    text = """0000: A = sys_number
0001: A == read ? ok : dead
0002: A != read ? ok : 2
0003: A <= 0x1337 ? ok : next
0004: A < 1337 ? ok : dead
0005: A >= read ? ok : dead
ok:
return ALLOW
dead:
return KILL
"""
    assert [tuple(i) for i in assemble(text, "x86_64")] == [
        (0x20, 0, 0, 0),
        (0x15, 4, 5, 0),  # if (A == 0) goto 0006 else goto 0007
        (0x15, 2, 3, 0),  # if (A == 0) goto 0005 else goto 0006
        (0x25, 0, 2, 0x1337),  # if (A <= 4919) goto 0006
        (0x35, 2, 1, 1337),  # if (A >= 1337) goto 0007 else goto 0006
        (0x35, 0, 1, 0),  # if (A < 0) goto 0007
        (0x06, 0, 0, 0x7FFF0000),
        (0x06, 0, 0, 0),
    ]


def test_constant_names():
    assert one("A = ARCH_X86_64") == (0x00, 0, 0, 0xC000003E)
    assert one("A = arch_i386") == (0x00, 0, 0, 0x40000003)
    assert one("A = ARCH_AARCH64") == (0x00, 0, 0, 0xC00000B7)
    assert one("A = ARCH_CALLGATE") == (0x00, 0, 0, 0x43474154)
    assert one("A = openat", "x86_64") == (0x00, 0, 0, 257)
    assert one("A = openat", "aarch64") == (0x00, 0, 0, 56)
    assert one("A = aarch64.openat", "x86_64") == (0x00, 0, 0, 56)
    assert one("A = x32.read", "x86_64") == (0x00, 0, 0, 0x40000000)
    assert one("A = ENOSYS", "x86_64") == (0x00, 0, 0, errno.ENOSYS)
    # The gate arch: WASI gate numbers (witx order) and WASI errno numbers.
    assert one("A = fd_write", "callgate") == (0x00, 0, 0, 26)
    assert one("return ERRNO(EPERM)", "callgate") == (0x06, 0, 0, 0x00050000 | 63)


def test_arch_is_inferred_from_the_arch_constant_the_text_checks():
    text = "A = arch\nA == ARCH_AARCH64 ? next : dead\nA = sys_number\nA == read ? ok : dead\n"
    text += "ok: return ALLOW\ndead: return KILL\n"
    assert text_arch(text).name == "aarch64"
    assert tuple(assemble(text)[3]) == (0x15, 0, 1, 63)  # read is 63 on aarch64
    assert tuple(assemble(text, "x86_64")[3]) == (0x15, 0, 1, 0)  # --arch wins
    assert text_arch("A = ARCH_X86_64\nA = ARCH_I386\nreturn A") is None


def test_listing_columns_and_header_are_ignored():
    listing = """ line  CODE  JT   JF      K
=================================
 0000: 0x20 0x00 0x00 0x00000004  A = arch
 0001: 0x15 0x00 0x01 0xc000003e  if (A != ARCH_X86_64) goto 0003
 0002: 0x06 0x00 0x00 0x7fff0000  return ALLOW
 0003: 0x06 0x00 0x00 0x00000000  return KILL
"""
    assert [tuple(i) for i in assemble(listing)] == [
        (0x20, 0, 0, 4),
        (0x15, 0, 1, 0xC000003E),
        (0x06, 0, 0, 0x7FFF0000),
        (0x06, 0, 0, 0),
    ]


def test_statements_may_span_lines_like_seccomp_tools_example():
    # seccomp-tools spec/data/example.asm, an `if` spread over several lines.
    text = "if (\n  A # comment\n    == 0x123\n  ) goto out\nelse\n  goto next\nout: return A\n"
    assert [tuple(i) for i in assemble(text, "x86_64")] == [(0x15, 0, 0, 0x123), (0x16, 0, 0, 0)]


def test_pyseccomp_export_bpf_matches_hand_written_text():
    require(pyseccomp is not None, "pyseccomp (libseccomp)")
    f = pyseccomp.SyscallFilter(pyseccomp.KILL)
    f.add_rule(pyseccomp.ALLOW, "read")
    f.add_rule(pyseccomp.ERRNO(errno.EACCES), "openat")
    f.add_rule(pyseccomp.ALLOW, "write", pyseccomp.Arg(0, pyseccomp.EQ, 2))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        exported = out.read()
    text = """
        A = arch
        if (A != ARCH_X86_64) goto kill
        A = sys_number
        if (A < 0x40000000) goto native
        if (A != 0xffffffff) goto kill
    native:
        if (A == read) goto allow
        if (A != openat) goto write
        return ERRNO(EACCES)
    write:
        if (A != write) goto kill
        A = args_h[0]
        if (A != 0) goto kill
        A = args[0]
        if (A != 2) goto kill
    allow:
        return ALLOW
    kill:
        return KILL
    """
    assert pack(assemble(text, "x86_64")) == exported


# (text, line, column, words the message must contain)
ERRORS = [
    ("A = args[8]", 1, 10, "index of args[]"),
    ("A = mem[16]", 1, 9, "scratch memory index"),
    ("mem[0x20] = A", 1, 5, "scratch memory index"),
    ("A = nosuchcall", 1, 5, "unknown name 'nosuchcall'"),
    ("return QQ", 1, 8, "unknown name 'QQ'"),
    ("X += 1", 1, 3, "expected '=' after X"),
    ("A = +A", 1, 5, "do you mean A = -A"),
    ("A = args[0] >> 5", 1, 16, "'>> 32'"),
    ("A = 1\n  if (A = 1) goto x", 2, 9, "expected a comparison"),
    ("if (A == 1) goto nowhere\nreturn A", 1, 18, "no label 'nowhere'"),
    ("goto 0003\nreturn A", 1, 6, "no label '0003'"),
    ("A = 0\nloop: A += 1\nA <= 10 ? loop : next\nreturn A", 3, 11, "backward jump"),
    ("l: A = 1\nl: return A", 2, 1, "duplicate label 'l'"),
    ("return A\ntrailing:", 2, 1, "no instruction after it"),
    ("next: return A", 1, 1, "reserved"),
    ("A = 0x100000000", 1, 5, "32 bits"),
    ("return ERRNO(65536)", 1, 14, "16 data bits"),
    ("A = 1 X = 2", 1, 7, "end of the line"),
    ("A = 1 $", 1, 7, "unknown token '$'"),
    (".byte 1", 1, 1, "unknown directive"),
    (".insn 0x10000, 0, 0, 0", 1, 7, "code"),
    (".insn 6 0 0 0", 1, 9, "','"),
    ("if (X == 1) goto next", 1, 5, "expected A"),
    ("A == 1 ? ok", 1, 12, "':'"),
    ("frobnicate", 1, 1, "expected a statement"),
    ("A = sys_number\nA == read ? next : far\n" + "A = 1\n" * 256 + "far: return A", 2, 20, "255"),
    ("goto 4294967296\nreturn A", 1, 6, "a goto reaches at most 4294967295"),
]


@pytest.mark.parametrize(("text", "line", "column", "words"), ERRORS)
def test_errors_name_line_column_and_what_was_expected(text, line, column, words):
    with pytest.raises(AsmError) as caught:
        assemble(text, "x86_64", filename="f.asm")
    err = caught.value
    assert (err.line, err.column) == (line, column), str(err)
    assert words in err.message
    assert str(err).startswith(f"f.asm:{line}:{column}: ")


def test_error_shows_the_source_line_and_a_caret():
    with pytest.raises(AsmError) as caught:
        assemble("A = sys_number\nA == nope ? a : b\n", "x86_64")
    lines = str(caught.value).splitlines()
    assert lines[1].strip() == "A == nope ? a : b"
    assert lines[2].index("^") == lines[1].index("nope")


def test_empty_text_is_an_empty_program():
    assert assemble("# nothing\n\n", "x86_64") == []


def test_result_is_insns():
    assert assemble("return ALLOW", "x86_64") == [Insn(0x06, 0, 0, 0x7FFF0000)]


def test_hostile_nesting_is_an_answer_not_a_crash():
    assert one("A = " + "(" * 100_000 + "7" + ")" * 100_000) == (0x00, 0, 0, 7)
    odd = "if (" + "!(" * 50_001 + "A == 1" + ")" * 50_001 + ") goto t\nA = 1\nt: return A"
    assert tuple(assemble(odd, "x86_64")[0]) == (0x15, 0, 1, 1)
    with pytest.raises(AsmError, match="'\\)'"):
        assemble("A = " + "(" * 1000 + "7", "x86_64")
