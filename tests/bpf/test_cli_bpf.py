"""``callgate asm``, ``disasm`` and ``emu`` through ``callgate.cli.main`` and the real script.

Expected emu paths are worked out by hand from the listings (which line runs,
which branch each comparison takes for the given syscall).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys

import pytest
from conftest import console_script, require

from callgate.cli import main

# seccomp-tools' spec/data/libseccomp.asm; its listing appears in seccomp-tools' emu spec.
LIBSECCOMP_ASM = """\
# check if arch is X86_64
A = arch
A == ARCH_X86_64 ? next : dead
A = sys_number
A >= 0x40000000 ? dead : next
A == write ? ok : next
A == close ? ok : next
A == dup ? ok : next
A == exit ? ok : next
return ERRNO(5)
ok:
return ALLOW
dead:
return KILL_THREAD
"""
LISTING = [
    " 0000: 0x20 0x00 0x00 0x00000004  A = arch",
    " 0001: 0x15 0x00 0x08 0xc000003e  if (A != ARCH_X86_64) goto 0010",
    " 0002: 0x20 0x00 0x00 0x00000000  A = sys_number",
    " 0003: 0x35 0x06 0x00 0x40000000  if (A >= 0x40000000) goto 0010",
    " 0004: 0x15 0x04 0x00 0x00000001  if (A == write) goto 0009",
    " 0005: 0x15 0x03 0x00 0x00000003  if (A == close) goto 0009",
    " 0006: 0x15 0x02 0x00 0x00000020  if (A == dup) goto 0009",
    " 0007: 0x15 0x01 0x00 0x0000003c  if (A == exit) goto 0009",
    " 0008: 0x06 0x00 0x00 0x00050005  return ERRNO(5)",
    " 0009: 0x06 0x00 0x00 0x7fff0000  return ALLOW",
    " 0010: 0x06 0x00 0x00 0x00000000  return KILL",
]
HEADER = [" line  CODE  JT   JF      K", "================================="]
RAW = b"".join(struct.pack("<HBBI", *(int(f, 16) for f in line.split()[1:5])) for line in LISTING)


@pytest.fixture
def files(tmp_path):
    asm = tmp_path / "libseccomp.asm"
    asm.write_text(LIBSECCOMP_ASM)
    raw = tmp_path / "libseccomp.bpf"
    raw.write_bytes(RAW)
    return asm, raw


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_asm_writes_raw_bpf(files, tmp_path, capsys):
    asm, _ = files
    out_file = tmp_path / "out.bpf"
    assert run(capsys, "asm", str(asm), "-o", str(out_file))[0] == 0
    assert out_file.read_bytes() == RAW


def test_asm_formats(files, capsys):
    asm, _ = files
    code, out, _ = run(capsys, "asm", str(asm), "--format", "hex")
    assert code == 0 and out == RAW.hex() + "\n"
    code, out, _ = run(capsys, "asm", str(asm), "--format", "asm")
    assert out.splitlines() == HEADER + LISTING
    code, out, _ = run(capsys, "asm", str(asm), "--format", "c")
    assert "struct sock_filter filter[] = {" in out
    assert "\t{ 0x15, 0x00, 0x08, 0xc000003e }, /* 0001: if (A != ARCH_X86_64) goto 0010 */" in out


def test_asm_refuses_raw_to_a_terminal(files, capsys, monkeypatch):
    asm, _ = files
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = run(capsys, "asm", str(asm))
    assert code == 2 and out == ""
    assert "-o OUT" in err


def test_asm_reads_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"return ALLOW\n")))
    code, out, _ = run(capsys, "asm", "-", "-f", "hex")
    assert code == 0 and out == "060000000000ff7f\n"


def test_asm_error_names_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.asm"
    bad.write_text("A = sys_number\nA == nosuch ? a : b\n")
    code, out, err = run(capsys, "asm", str(bad), "-f", "hex")
    assert code == 2 and out == ""
    assert f"{bad}:2:6: unknown name 'nosuch'" in err


def test_unreadable_file_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "disasm", str(tmp_path / "missing.bpf"))
    assert code == 2
    assert "cannot read" in err and "missing.bpf" in err


def test_disasm_raw_and_hex(files, tmp_path, capsys):
    _, raw = files
    code, out, _ = run(capsys, "disasm", str(raw))
    assert code == 0 and out.splitlines() == HEADER + LISTING
    hex_file = tmp_path / "prog.hex"
    hex_file.write_text(RAW.hex() + "\n")
    assert run(capsys, "disasm", str(hex_file))[1].splitlines() == HEADER + LISTING


def test_disasm_rejects_a_torn_record(tmp_path, capsys):
    torn = tmp_path / "torn.bpf"
    torn.write_bytes(RAW[:-3])
    code, _, err = run(capsys, "disasm", str(torn))
    assert code == 2 and "8-byte" in err


def test_disasm_then_asm_reproduces_the_file(files, tmp_path, capsys):
    _, raw = files
    listing = tmp_path / "listing.txt"
    listing.write_text(run(capsys, "disasm", str(raw))[1])
    out = tmp_path / "again.bpf"
    assert run(capsys, "asm", str(listing), "-o", str(out))[0] == 0
    assert out.read_bytes() == RAW


def test_emu_prints_the_executed_path(files, capsys):
    _, raw = files
    # write (1) on x86_64: arch matches, nr < 0x40000000, first comparison hits.
    code, out, _ = run(capsys, "emu", str(raw), "write", "--arch", "x86_64")
    assert code == 0
    path = [0, 1, 2, 3, 4, 9]
    assert out.splitlines() == [
        *HEADER,
        *(LISTING[i] for i in path),
        "",
        "return ALLOW at line 0009",
    ]


def test_emu_other_outcomes(files, capsys):
    asm, raw = files
    # getpid (39) falls through every comparison; the arch comes from the program.
    assert run(capsys, "emu", str(asm), "39", "-q")[1] == "return ERRNO(5) at line 0008\n"
    # i386's AUDIT_ARCH fails the first check (seccomp-tools' emu spec: KILL at 0010).
    code, out, _ = run(capsys, "emu", str(raw), "0x3", "--arch", "i386")
    assert code == 0
    tail = [LISTING[0], LISTING[1], LISTING[10], "", "return KILL at line 0010"]
    assert out.splitlines()[2:] == tail
    # x32 numbers go to the dead label.
    assert run(capsys, "emu", str(raw), "0x40000001", "-q")[1] == "return KILL at line 0010\n"


def test_emu_kill_process(tmp_path, capsys):
    # seccomp-tools' emu spec 'kill process': RET K 0x80000000.
    prog = tmp_path / "kp.bpf"
    prog.write_bytes(b"\x06" + b"\x00" * 6 + b"\x80")
    assert run(capsys, "emu", str(prog), "0", "-q", "--arch", "x86_64") == (
        0,
        "return KILL_PROCESS at line 0000\n",
        "",
    )


def test_emu_arguments_and_instruction_pointer(tmp_path, capsys):
    prog = tmp_path / "args.asm"
    prog.write_text(
        "A = args_h[1]\nif (A != 0x1) goto no\nA = args[1]\nif (A != 0x2) goto no\n"
        "A = instruction_pointer\nif (A == 0x1000) goto yes\n"
        "no: return ERRNO(EPERM)\nyes: return TRACE(9)\n"
    )
    base = ["emu", str(prog), "1000", "0", "0x100000002", "--arch", "x86_64", "-q"]
    assert run(capsys, *base, "--ip", "0x1000")[1] == "return TRACE(9) at line 0007\n"
    assert run(capsys, *base)[1] == "return ERRNO(1) at line 0006\n"
    code, _, err = run(capsys, "emu", str(prog), "1", *["0"] * 7)
    assert code == 2 and "at most 6" in err


def test_emu_gate_arch(tmp_path, capsys):
    prog = tmp_path / "gate.asm"
    prog.write_text(
        "A = arch\nif (A != ARCH_CALLGATE) goto no\nA = sys_number\n"
        "if (A == fd_write) goto yes\nno: return ERRNO(EBADF)\nyes: return ALLOW\n"
    )
    assert run(capsys, "emu", str(prog), "fd_write", "-q")[1] == "return ALLOW at line 0005\n"
    assert run(capsys, "emu", str(prog), "fd_read", "-q")[1] == "return ERRNO(8) at line 0004\n"
    code, _, err = run(capsys, "emu", str(prog), "no_such_gate")
    assert code == 2 and "no_such_gate" in err


@pytest.mark.parametrize(
    ("text", "index", "rule"),
    [
        ("A = data[2]\nreturn A", 0, "load-alignment"),
        ("A = data[64]\nreturn A", 0, "load-offset"),
        ("A = mem[3]\nreturn A", 0, "mem-uninit"),
        ("A /= 0\nreturn A", 0, "div-by-zero"),
        ("A %= 3\nreturn A", 0, "opcode"),
        ("A = 1\n.insn 0x15, 5, 0, 1\nreturn A", 1, "jump-range"),
        ("A = 1", None, "last-not-return"),
        ("# empty", None, "length"),
    ],
)
def test_emu_refuses_what_the_kernel_refuses(tmp_path, capsys, text, index, rule):
    prog = tmp_path / "bad.asm"
    prog.write_text(text + "\n")
    code, out, err = run(capsys, "emu", str(prog), "0", "--arch", "x86_64")
    assert code == 2 and out == ""
    assert f"rule {rule}" in err
    if index is not None:
        assert f"instruction {index}" in err


def test_console_script_runs(files, tmp_path):
    exe = console_script()
    require(exe is not None, "the `callgate` console script installed beside sys.executable")
    asm, _ = files
    out = tmp_path / "script.bpf"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [exe, "asm", str(asm), "-o", str(out)], capture_output=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == RAW
    done = subprocess.run(
        [exe, "emu", str(out), "close", "--arch", "x86_64", "-q"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "return ALLOW at line 0009\n")
    done = subprocess.run(
        [exe, "emu", "-", "0"], input="A = mem[0]\nreturn A\n", capture_output=True, text=True
    )
    assert done.returncode == 2 and "rule mem-uninit" in done.stderr


def test_emu_number_checks(files, capsys):
    _, raw = files
    code, _, err = run(capsys, "emu", str(raw), "0x1ffffffff", "--arch", "x86_64")
    assert code == 2 and "does not fit in 32 bits" in err
    # -1 is nr 0xffffffff, above the x32 bit: the filter's dead branch.
    assert run(capsys, "emu", str(raw), "-1", "-q", "--arch", "x86_64")[1] == (
        "return KILL at line 0010\n"
    )
    code, _, err = run(capsys, "emu", str(raw), "1", "zero", "--arch", "x86_64")
    assert code == 2 and "argument 0 'zero' is not a number" in err


def test_asm_ignores_a_byte_order_mark(tmp_path, capsys):
    prog = tmp_path / "bom.asm"
    prog.write_bytes(b"\xef\xbb\xbfreturn ALLOW\n")
    assert run(capsys, "asm", str(prog), "-f", "hex")[1] == "060000000000ff7f\n"


def test_emu_on_x32_sends_what_the_kernel_reports(tmp_path, capsys):
    """An x32 call reaches a filter as AUDIT_ARCH_X86_64 with the x32 bit in nr."""
    policy = tmp_path / "x32.toml"
    policy.write_text('[kernel]\ndefault = "errno(EPERM)"\n'
                      '[[kernel.rules]]\nnames = ["read"]\naction = "allow"\n')
    program = tmp_path / "x32.bpf"
    assert main(["compile", str(policy), "--arch", "x32", "-o", str(program)]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "emu", str(program), "read", "--arch", "x32", "-q")
    assert (code, out.split(" at ")[0]) == (0, "return ALLOW")
    code, out, _ = run(capsys, "emu", str(program), "read", "--arch", "x86_64", "-q")
    assert (code, out.split(" at ")[0]) == (0, "return KILL_PROCESS")  # x86_64's read: no bit
