"""The kernel's admission rules for seccomp filters, rule for rule and in the kernel's order.

``seccomp(SECCOMP_SET_MODE_FILTER)`` hands the program to ``bpf_prog_create_from_user``,
which runs, in this order:

1. ``bpf_check_basics_ok`` / ``bpf_check_classic`` (``net/core/filter.c``): length
   1..4096; one pass over the instructions checking each against the classic opcode
   table, division by a constant 0, shifts by a constant >= 32, scratch index < 16,
   jump targets, and ancillary loads; then "the last instruction is a return"; then
   ``check_load_and_stores``, a linear dataflow pass proving every scratch read
   follows a write;
2. ``seccomp_check_filter`` (``kernel/seccomp.c``): a whitelist of whole 16-bit
   codes, and ``LD|W|ABS`` only at aligned offsets inside ``struct seccomp_data``.

Every failure there is one ``EINVAL``. :func:`verify` reports the *first* failure
the kernel would hit, naming the instruction and a short stable rule id (see
:data:`RULES`), so a user can fix the program and tools can test for the rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import SECCOMP_DATA_SIZE
from callgate.errors import CallgateError

# Rule id -> the rule in words. The ids are stable; tools and tests match on them.
RULES: dict[str, str] = {
    "length": f"a program has 1 to {op.BPF_MAXINSNS} instructions",
    "field-range": "code fits in 16 bits, jt and jf in 8 bits, k in 32 bits",
    "opcode": "the opcode is one seccomp allows",
    "div-by-zero": "division by the constant 0 is refused",
    "shift-range": "a shift by a constant must be below 32",
    "mem-index": f"scratch memory has {op.BPF_MEMWORDS} words (index 0..{op.BPF_MEMWORDS - 1})",
    "jump-range": "a jump must land on an instruction of the program",
    "load-offset": f"a load must read inside seccomp_data (offset < {SECCOMP_DATA_SIZE})",
    "load-alignment": "a load from seccomp_data must be 4-byte aligned",
    "last-not-return": "the last instruction must be a return (RET K or RET A)",
    "mem-uninit": "scratch memory must be written before it is read, on every path",
}


def _hex(value: object, width: int = 0) -> str:
    """An int field in hex as seccomp tools print it; anything else as its repr."""
    return format(int(value), f"#0{width}x") if type(value) is int else repr(value)


class VerifierError(CallgateError, ValueError):
    """A program the kernel would refuse with ``EINVAL``.

    ``index`` is the offending instruction (``None`` for whole-program rules such
    as ``length``), ``rule`` a key of :data:`RULES`.
    """

    def __init__(self, rule: str, detail: str, index: int | None = None, insn: Insn | None = None):
        self.rule = rule
        self.index = index
        self.insn = insn
        where = "program"
        if index is not None and insn is not None:
            where = (
                f"instruction {index} (code={_hex(insn.code, 6)} jt={insn.jt!r} "
                f"jf={insn.jf!r} k={_hex(insn.k)})"
            )
        super().__init__(f"{where}: {detail} [rule {rule}: {RULES[rule]}]")
        self._detail = detail

    def __reduce__(  # picklable, so it can cross a process boundary (worker, child)
        self,
    ) -> tuple[type[VerifierError], tuple[str, str, int | None, Insn | None]]:
        return (type(self), (self.rule, self._detail, self.index, self.insn))


_ALU_NAMES = {
    op.BPF_ADD: "ADD",
    op.BPF_SUB: "SUB",
    op.BPF_MUL: "MUL",
    op.BPF_DIV: "DIV",
    op.BPF_MOD: "MOD",
    op.BPF_AND: "AND",
    op.BPF_OR: "OR",
    op.BPF_XOR: "XOR",
    op.BPF_LSH: "LSH",
    op.BPF_RSH: "RSH",
}
_COND_NAMES = {op.BPF_JEQ: "JEQ", op.BPF_JGT: "JGT", op.BPF_JGE: "JGE", op.BPF_JSET: "JSET"}
_SRC_NAMES = {op.BPF_K: "K", op.BPF_X: "X"}


def _classic_opcodes() -> dict[int, str]:
    """``chk_code_allowed``: every code classic BPF knows, with its ``<linux/filter.h>`` name."""
    codes = {
        op.BPF_ALU | alu | src: f"BPF_ALU|BPF_{name}|BPF_{_SRC_NAMES[src]}"
        for alu, name in _ALU_NAMES.items()
        for src in (op.BPF_K, op.BPF_X)
    }
    codes |= {
        op.BPF_JMP | cond | src: f"BPF_JMP|BPF_{name}|BPF_{_SRC_NAMES[src]}"
        for cond, name in _COND_NAMES.items()
        for src in (op.BPF_K, op.BPF_X)
    }
    for size, size_name in ((op.BPF_W, "W"), (op.BPF_H, "H"), (op.BPF_B, "B")):
        for mode, mode_name in ((op.BPF_ABS, "ABS"), (op.BPF_IND, "IND")):
            codes[op.BPF_LD | size | mode] = f"BPF_LD|BPF_{size_name}|BPF_{mode_name}"
    codes |= {
        op.BPF_ALU | op.BPF_NEG: "BPF_ALU|BPF_NEG",
        op.BPF_LD | op.BPF_W | op.BPF_LEN: "BPF_LD|BPF_W|BPF_LEN",
        op.BPF_LD | op.BPF_IMM: "BPF_LD|BPF_IMM",
        op.BPF_LD | op.BPF_MEM: "BPF_LD|BPF_MEM",
        op.BPF_LDX | op.BPF_W | op.BPF_LEN: "BPF_LDX|BPF_W|BPF_LEN",
        op.BPF_LDX | op.BPF_B | op.BPF_MSH: "BPF_LDX|BPF_B|BPF_MSH",
        op.BPF_LDX | op.BPF_IMM: "BPF_LDX|BPF_IMM",
        op.BPF_LDX | op.BPF_MEM: "BPF_LDX|BPF_MEM",
        op.BPF_ST: "BPF_ST",
        op.BPF_STX: "BPF_STX",
        op.BPF_MISC | op.BPF_TAX: "BPF_MISC|BPF_TAX",
        op.BPF_MISC | op.BPF_TXA: "BPF_MISC|BPF_TXA",
        op.BPF_RET | op.BPF_K: "BPF_RET|BPF_K",
        op.BPF_RET | op.BPF_A: "BPF_RET|BPF_A",
        op.BPF_JMP | op.BPF_JA: "BPF_JMP|BPF_JA",
    }
    return codes


CLASSIC_OPCODES: dict[int, str] = _classic_opcodes()

# The classic codes ``seccomp_check_filter`` does not list: no packet loads, no MOD.
_NOT_FOR_SECCOMP = frozenset(
    {op.BPF_ALU | op.BPF_MOD | op.BPF_K, op.BPF_ALU | op.BPF_MOD | op.BPF_X}
    | {op.BPF_LD | size | op.BPF_ABS for size in (op.BPF_H, op.BPF_B)}
    | {op.BPF_LD | size | op.BPF_IND for size in (op.BPF_W, op.BPF_H, op.BPF_B)}
    | {op.BPF_LDX | op.BPF_B | op.BPF_MSH}
)
SECCOMP_OPCODES: frozenset[int] = frozenset(CLASSIC_OPCODES) - _NOT_FOR_SECCOMP

CONDITIONAL_JUMPS: frozenset[int] = frozenset(
    op.BPF_JMP | cond | src for cond in _COND_NAMES for src in (op.BPF_K, op.BPF_X)
)
RETURNS: frozenset[int] = frozenset({op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A})
_MEM_ACCESS = frozenset({op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM, op.BPF_ST, op.BPF_STX})
_MEM_LOADS = frozenset({op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM})
_ABS_LOADS = frozenset(op.BPF_LD | size | op.BPF_ABS for size in (op.BPF_W, op.BPF_H, op.BPF_B))
_LD_W_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS

# Ancillary loads (``SKF_AD_OFF + SKF_AD_*``, ``bpf_anc_helper``) pass bpf_check_classic;
# any other ABS offset at or above SKF_AD_OFF is refused there.
SKF_AD_OFF = 0xFFFFF000
_ANCILLARY = frozenset(SKF_AD_OFF + off for off in range(0, 64, 4))


def verify(program: Sequence[Insn]) -> None:
    """Raise :class:`VerifierError` for the first rule the kernel would break on, else return."""
    if not 1 <= len(program) <= op.BPF_MAXINSNS:
        raise VerifierError("length", f"{len(program)} instructions is not in 1..{op.BPF_MAXINSNS}")
    for pc, insn in enumerate(program):
        _check_classic(pc, insn, len(program))
    last = len(program) - 1
    if program[last].code not in RETURNS:
        raise VerifierError(
            "last-not-return", "the program can run off its end", last, program[last]
        )
    _check_scratch_reads(program)
    for pc, insn in enumerate(program):
        _check_seccomp(pc, insn)


def _check_classic(pc: int, insn: Insn, length: int) -> None:
    """One instruction of ``bpf_check_classic``'s loop."""
    code, k = insn.code, insn.k
    if not all(isinstance(field, int) for field in insn):
        raise VerifierError("field-range", "every field must be an integer", pc, insn)
    if not (0 <= code <= 0xFFFF and 0 <= insn.jt <= 0xFF and 0 <= insn.jf <= 0xFF):
        raise VerifierError("field-range", "a field does not fit struct sock_filter", pc, insn)
    if not 0 <= k <= 0xFFFFFFFF:
        raise VerifierError("field-range", "k does not fit in 32 bits", pc, insn)
    if code not in CLASSIC_OPCODES:
        raise VerifierError("opcode", f"{code:#06x} is not a classic BPF opcode", pc, insn)
    if code in (op.BPF_ALU | op.BPF_DIV | op.BPF_K, op.BPF_ALU | op.BPF_MOD | op.BPF_K):
        if k == 0:
            raise VerifierError("div-by-zero", "division by the constant 0", pc, insn)
    elif code in (op.BPF_ALU | op.BPF_LSH | op.BPF_K, op.BPF_ALU | op.BPF_RSH | op.BPF_K):
        if k >= 32:
            raise VerifierError("shift-range", f"shift by {k} (must be below 32)", pc, insn)
    elif code in _MEM_ACCESS:
        if k >= op.BPF_MEMWORDS:
            raise VerifierError("mem-index", f"scratch index {k} is past mem[15]", pc, insn)
    elif code == op.BPF_JMP | op.BPF_JA:
        if k >= length - pc - 1:
            raise VerifierError(
                "jump-range", f"goto lands on {pc + 1 + k}, past the last instruction", pc, insn
            )
    elif code in CONDITIONAL_JUMPS:
        if pc + insn.jt + 1 >= length or pc + insn.jf + 1 >= length:
            raise VerifierError(
                "jump-range",
                f"branches land on {pc + 1 + insn.jt} and {pc + 1 + insn.jf}; "
                f"the last instruction is {length - 1}",
                pc,
                insn,
            )
    elif code in _ABS_LOADS and k >= SKF_AD_OFF and k not in _ANCILLARY:
        raise VerifierError("load-offset", f"offset {k:#x} is an unknown ancillary load", pc, insn)


def _check_scratch_reads(program: Sequence[Insn]) -> None:
    """``check_load_and_stores``: the kernel's linear pass, bug-compatible.

    A jump narrows the valid set of its targets and resets the running set; a
    return does *not* reset it, so code after a return that nothing jumps to
    still inherits the set from above it.
    """
    everything = (1 << op.BPF_MEMWORDS) - 1
    masks = [everything] * len(program)
    valid = 0  # nothing is written before the first instruction
    for pc, insn in enumerate(program):
        valid &= masks[pc]
        code = insn.code
        if code in (op.BPF_ST, op.BPF_STX):
            valid |= 1 << insn.k
        elif code in _MEM_LOADS:
            if not valid >> insn.k & 1:
                raise VerifierError(
                    "mem-uninit",
                    f"mem[{insn.k}] is read but not written on every path to here",
                    pc,
                    insn,
                )
        elif code == op.BPF_JMP | op.BPF_JA:
            masks[pc + 1 + insn.k] &= valid
            valid = everything
        elif code in CONDITIONAL_JUMPS:
            masks[pc + 1 + insn.jt] &= valid
            masks[pc + 1 + insn.jf] &= valid
            valid = everything


def _check_seccomp(pc: int, insn: Insn) -> None:
    """One instruction of ``seccomp_check_filter``: the whitelist and the data bounds."""
    if insn.code not in SECCOMP_OPCODES:
        name = CLASSIC_OPCODES[insn.code]
        raise VerifierError("opcode", f"{name} is classic BPF but seccomp refuses it", pc, insn)
    if insn.code == _LD_W_ABS:
        if insn.k >= SECCOMP_DATA_SIZE:
            raise VerifierError(
                "load-offset",
                f"offset {insn.k:#x} is outside the {SECCOMP_DATA_SIZE}-byte seccomp_data",
                pc,
                insn,
            )
        if insn.k & 3:
            raise VerifierError(
                "load-alignment", f"offset {insn.k} is not a multiple of 4", pc, insn
            )
