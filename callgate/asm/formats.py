"""Program files in and out: raw ``struct sock_filter`` bytes, hex, C arrays, assembly text.

Reading tells the forms apart without being told: raw BPF holds NUL bytes (every
opcode's high byte is 0) or is not UTF-8; text made only of hex digits is hex
(no assembly statement is a bare number); any other text is assembly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from callgate.arch import Arch
from callgate.asm.assembler import assemble
from callgate.asm.disassembler import disassemble, statements
from callgate.asm.syntax import LINE_LABEL
from callgate.bpf.insn import Insn, pack, unpack
from callgate.errors import CallgateError

FORMATS = ("raw", "hex", "c", "asm")
_HEX_TEXT = re.compile(r"[0-9a-fA-F\s]+")


class ProgramFileError(CallgateError, ValueError):
    """A program file that is none of the accepted forms."""


def is_raw(data: bytes) -> bool:
    """Whether ``data`` is raw BPF rather than text."""
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def read_program(data: bytes, arch: Arch | str | None = None, name: str = "<input>") -> list[Insn]:
    """Decode a program from raw bytes, hex text or assembly text (detected)."""
    if is_raw(data):
        return unpack(data)
    text = data.decode("utf-8")
    if text.strip() and _HEX_TEXT.fullmatch(text):
        digits = "".join(text.split())
        if len(digits) % 2:
            raise ProgramFileError(f"{name}: hex text has an odd number of digits")
        return unpack(bytes.fromhex(digits))
    return assemble(text, arch, name)


def render(program: Sequence[Insn], fmt: str, arch: Arch | str | None = None) -> bytes:
    """Encode a program in one of :data:`FORMATS`."""
    if fmt == "raw":
        return pack(program)
    if fmt == "hex":
        return (pack(program).hex() + "\n").encode()
    if fmt == "asm":
        return disassemble(program, arch).encode()
    if fmt == "c":
        return c_array(program, arch).encode()
    raise ProgramFileError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def c_array(program: Sequence[Insn], arch: Arch | str | None = None) -> str:
    """A ``struct sock_filter`` array for C, each entry commented with its listing text."""
    lines = [
        "#include <linux/filter.h>",
        "",
        "struct sock_filter filter[] = {",
    ]
    for pc, (insn, text) in enumerate(zip(program, statements(program, arch), strict=True)):
        lines.append(
            f"\t{{ 0x{insn.code:02x}, 0x{insn.jt:02x}, 0x{insn.jf:02x}, 0x{insn.k:08x} }},"
            f" /* {LINE_LABEL.format(line=pc)}: {text} */"
        )
    lines += ["};", ""]
    return "\n".join(lines)
