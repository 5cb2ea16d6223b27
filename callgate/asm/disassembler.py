"""Disassembler: instructions to seccomp-tools' listing, which re-assembles to the same bytes.

The layout is seccomp-tools'::

     line  CODE  JT   JF      K
    =================================
     0000: 0x20 0x00 0x00 0x00000004  A = arch
     0001: 0x15 0x00 0x08 0xc000003e  if (A != ARCH_X86_64) goto 0010

Like seccomp-tools, a forward pass tracks where A came from, so a comparison with
A loaded from ``sys_number`` prints syscall names (for the architecture the path
has checked, else the listing's), and one with A loaded from ``arch`` prints
``ARCH_*`` names. Unlike seccomp-tools, every instruction's text is exactly its
encoding: where no statement would encode back to the same four fields (unused
fields set, opcodes outside classic BPF, jumps past the end, ``jt == jf``
written as a plain ``goto``) the line is ``.insn CODE, JT, JF, K``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from callgate.arch import GATE_ARCH, Arch, arch_by_audit
from callgate.asm.syntax import (
    ALU_SYMBOLS,
    COMPARE_SYMBOLS,
    DECIMAL_ALU_OPS,
    LINE_LABEL,
    LISTING_HEADER,
    LISTING_LINE,
    NEGATED_SYMBOLS,
    RAW_DIRECTIVE,
    arch_constant_name,
    choose_arch,
    data_spelling,
    syscall_spelling,
)
from callgate.bpf import opcodes as op
from callgate.bpf.actions import format_action
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import OFF_ARCH, OFF_NR

_UNUSED = "jt/jf/k set where this instruction ignores them"


# ---------------------------------------------------------------------------
# Where values came from, per instruction (seccomp-tools' disassembly context).


@dataclass(frozen=True)
class _Value:
    """A register's provenance: loaded from ``seccomp_data`` at ``offset``, or a constant."""

    offset: int | None = None
    constant: int | None = None


_UNKNOWN = _Value()


@dataclass(frozen=True)
class _State:
    a: _Value = _UNKNOWN
    x: _Value = _UNKNOWN
    mem: tuple[_Value, ...] = (_UNKNOWN,) * op.BPF_MEMWORDS
    known: tuple[tuple[int, int], ...] = ()  # seccomp_data words proven equal to a value

    def join(self, other: _State) -> _State:
        """What holds on both paths into an instruction."""

        def same(a: _Value, b: _Value) -> _Value:
            return a if a == b else _UNKNOWN

        return _State(
            same(self.a, other.a),
            same(self.x, other.x),
            tuple(same(a, b) for a, b in zip(self.mem, other.mem, strict=True)),
            tuple(sorted(set(self.known) & set(other.known))),
        )

    def knowing(self, offset: int, value: int) -> _State:
        known = dict(self.known)
        known[offset] = value
        return replace(self, known=tuple(sorted(known.items())))

    def known_value(self, offset: int) -> int | None:
        return dict(self.known).get(offset)


def _step(insn: Insn, state: _State) -> _State:
    """The state after a non-jump instruction (unknown encodings forget everything)."""
    code, k = insn.code, insn.k
    cls, mode = op.bpf_class(code), op.bpf_mode(code)
    if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
        return replace(state, a=_Value(offset=k))
    if code == op.BPF_LDX | op.BPF_W | op.BPF_ABS:
        return replace(state, x=_Value(offset=k))
    if cls in (op.BPF_LD, op.BPF_LDX) and mode in (op.BPF_IMM, op.BPF_MEM):
        if mode == op.BPF_IMM:
            value = _Value(constant=k)
        else:
            value = state.mem[k] if k < op.BPF_MEMWORDS else _UNKNOWN
        return replace(state, a=value) if cls == op.BPF_LD else replace(state, x=value)
    if code in (op.BPF_ST, op.BPF_STX) and k < op.BPF_MEMWORDS:
        mem = list(state.mem)
        mem[k] = state.a if code == op.BPF_ST else state.x
        return replace(state, mem=tuple(mem))
    if code == op.BPF_MISC | op.BPF_TAX:
        return replace(state, x=state.a)
    if code == op.BPF_MISC | op.BPF_TXA:
        return replace(state, a=state.x)
    if cls == op.BPF_LDX:
        return replace(state, x=_UNKNOWN)
    if cls in (op.BPF_LD, op.BPF_ALU):
        return replace(state, a=_UNKNOWN)
    if cls in (op.BPF_RET, op.BPF_JMP):
        return state
    return _State()


def _equal_branch(insn: Insn, state: _State) -> _State:
    """On the true branch of ``A == k`` (or ``A == X``), A's source word is now known."""
    if state.a.offset is None:
        return state
    if op.bpf_src(insn.code) == op.BPF_K:
        return state.knowing(state.a.offset, insn.k)
    if state.x.constant is not None:
        return state.knowing(state.a.offset, state.x.constant)
    if state.x.offset is not None and (v := state.known_value(state.x.offset)) is not None:
        return state.knowing(state.a.offset, v)
    return state


def _successors(pc: int, insn: Insn, state: _State) -> list[tuple[int, _State]]:
    code = insn.code
    cls = op.bpf_class(code)
    if cls == op.BPF_RET:
        return []
    if cls != op.BPF_JMP:
        return [(pc + 1, _step(insn, state))]
    if op.bpf_op(code) == op.BPF_JA:
        return [(pc + 1 + insn.k, state)]
    if insn.jt == insn.jf:
        return [(pc + 1 + insn.jt, state)]
    taken = _equal_branch(insn, state) if op.bpf_op(code) == op.BPF_JEQ else state
    return [(pc + 1 + insn.jt, taken), (pc + 1 + insn.jf, state)]


def _states(program: Sequence[Insn]) -> list[_State | None]:
    """The joined state before each instruction; None where no path reaches it."""
    states: list[_State | None] = [None] * len(program)
    if program:
        states[0] = _State()
    for pc, insn in enumerate(program):
        state = states[pc]
        if state is None:
            continue
        for nxt, new in _successors(pc, insn, state):
            if nxt < len(program):
                old = states[nxt]
                states[nxt] = new if old is None else old.join(new)
    return states


def program_arch(program: Sequence[Insn]) -> Arch | None:
    """The one architecture whose ``ARCH_*`` name the listing prints, if exactly one.

    Found by rendering, so the assembler, which infers the architecture from the
    ``ARCH_*`` names in a text, infers the same one from the listing.
    """
    renderer = _Renderer(program, GATE_ARCH)  # ARCH_* naming does not depend on the arch
    for pc in range(len(program)):
        renderer.spelling(pc)
    found = renderer.named_arches
    return next(iter(found.values())) if len(found) == 1 else None


# ---------------------------------------------------------------------------
# Text for one instruction.


class _Raw(Exception):
    """This instruction has no statement that encodes back to it."""


@dataclass
class _Renderer:
    program: Sequence[Insn]
    arch: Arch
    states: list[_State | None] = field(init=False)
    named_arches: dict[str, Arch] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.states = _states(self.program)

    def spelling(self, pc: int) -> str:
        """The statement for instruction ``pc``, or its ``.insn`` form with the reason."""
        insn = self.program[pc]
        try:
            return self.text(pc, insn)
        except _Raw as why:
            return (
                f"{RAW_DIRECTIVE} 0x{insn.code:02x}, 0x{insn.jt:02x}, 0x{insn.jf:02x}, "
                f"0x{insn.k:08x}  # {why}"
            )

    def text(self, pc: int, insn: Insn) -> str:
        code = insn.code
        if code > 0xFF:
            raise _Raw("opcode beyond classic BPF's 8 bits")
        cls = op.bpf_class(code)
        if cls == op.BPF_JMP:
            return self.jump(pc, insn)
        if insn.jt or insn.jf:
            raise _Raw(_UNUSED)
        if cls in (op.BPF_LD, op.BPF_LDX):
            return self.load(insn)
        if cls in (op.BPF_ST, op.BPF_STX):
            if code not in (op.BPF_ST, op.BPF_STX):
                raise _Raw("unknown store opcode")
            if insn.k >= op.BPF_MEMWORDS:
                raise _Raw(f"scratch memory has {op.BPF_MEMWORDS} words")
            return f"mem[{insn.k}] = {'A' if code == op.BPF_ST else 'X'}"
        if cls == op.BPF_ALU:
            return self.alu(insn)
        if cls == op.BPF_RET:
            if code == op.BPF_RET | op.BPF_K:
                return f"return {format_action(insn.k)}"
            if code == op.BPF_RET | op.BPF_A and insn.k == 0:
                return "return A"
            raise _Raw(_UNUSED if code == op.BPF_RET | op.BPF_A else "unknown return source")
        # BPF_MISC
        if insn.k == 0 and code == op.BPF_MISC | op.BPF_TAX:
            return "X = A"
        if insn.k == 0 and code == op.BPF_MISC | op.BPF_TXA:
            return "A = X"
        raise _Raw(_UNUSED if code in (0x07, 0x87) else "unknown misc opcode")

    def load(self, insn: Insn) -> str:
        code, k = insn.code, insn.k
        reg = "A" if op.bpf_class(code) == op.BPF_LD else "X"
        mode = op.bpf_mode(code)
        if mode == op.BPF_IND:
            raise _Raw("indirect load (not allowed in seccomp)")
        if mode == op.BPF_MSH:
            raise _Raw("MSH load (not allowed in seccomp)")
        if op.bpf_size(code) != op.BPF_W:
            raise _Raw("load of a half word or byte (seccomp loads 32-bit words)")
        if mode == op.BPF_IMM:
            return f"{reg} = {k}"
        if mode == op.BPF_ABS:
            return f"{reg} = {data_spelling(k)}"
        if mode == op.BPF_MEM and k < op.BPF_MEMWORDS:
            return f"{reg} = mem[{k}]"
        if mode == op.BPF_LEN and k == 0:
            return f"{reg} = len"
        raise _Raw(
            {
                op.BPF_MEM: f"scratch memory has {op.BPF_MEMWORDS} words",
                op.BPF_LEN: _UNUSED,
            }.get(mode, "unknown load mode")
        )

    def alu(self, insn: Insn) -> str:
        code, k = insn.code, insn.k
        alu_op, src = op.bpf_op(code), op.bpf_src(code)
        if alu_op == op.BPF_NEG:
            if src or k:
                raise _Raw(_UNUSED)
            return "A = -A"
        sym = ALU_SYMBOLS.get(alu_op)
        if sym is None:
            raise _Raw("unknown ALU operation")
        if src == op.BPF_X:
            if k:
                raise _Raw(_UNUSED)
            return f"A {sym}= X"
        return f"A {sym}= {k}" if alu_op in DECIMAL_ALU_OPS else f"A {sym}= {k:#x}"

    def jump(self, pc: int, insn: Insn) -> str:
        code = insn.code
        jop, src = op.bpf_op(code), op.bpf_src(code)
        if jop == op.BPF_JA:
            if code != op.BPF_JMP | op.BPF_JA or insn.jt or insn.jf:
                raise _Raw(_UNUSED)
            return f"goto {self.target(pc, insn.k)}"
        if jop not in COMPARE_SYMBOLS:
            raise _Raw("unknown jump operation")
        if src == op.BPF_X and insn.k:
            raise _Raw(_UNUSED)
        jt, jf = self.target(pc, insn.jt), self.target(pc, insn.jf)  # may make it .insn
        operand = "X" if src == op.BPF_X else self.constant(pc, insn)
        if insn.jt == 0:
            if jop == op.BPF_JSET:
                return f"if (!(A & {operand})) goto {jf}"
            return f"if (A {NEGATED_SYMBOLS[jop]} {operand}) goto {jf}"
        text = f"if (A {COMPARE_SYMBOLS[jop]} {operand}) goto {jt}"
        return text + f" else goto {jf}" if insn.jf else text

    def target(self, pc: int, offset: int) -> str:
        dest = pc + 1 + offset
        if dest >= len(self.program):
            raise _Raw(f"jumps to line {dest}, past the end")
        return LINE_LABEL.format(line=dest)

    def constant(self, pc: int, insn: Insn) -> str:
        """The compared constant, named after where A came from (seccomp-tools' rules)."""
        k = insn.k
        state = self.states[pc]
        if state is None or state.a.offset is None:
            return str(k)
        if state.a.offset == OFF_ARCH:
            arch = arch_by_audit(k)
            if arch is None:
                return hex(k)
            self.named_arches[arch.name] = arch
            return arch_constant_name(arch)
        if state.a.offset == OFF_NR and op.bpf_op(insn.code) == op.BPF_JEQ:
            checked = state.known_value(OFF_ARCH)
            arch = (arch_by_audit(checked) if checked is not None else None) or self.arch
            return syscall_spelling(k, arch, self.arch) or hex(k)
        return hex(k)


def statements(program: Sequence[Insn], arch: Arch | str | None = None) -> list[str]:
    """The text of each instruction (the listing without line numbers and raw columns)."""
    chosen = choose_arch(arch, program_arch(program) if arch is None else None)
    renderer = _Renderer(program, chosen)
    return [renderer.spelling(pc) for pc in range(len(program))]


def listing_lines(program: Sequence[Insn], arch: Arch | str | None = None) -> list[str]:
    """One listing line per instruction, without the header."""
    return [
        LISTING_LINE.format(line=pc, code=insn.code, jt=insn.jt, jf=insn.jf, k=insn.k, text=text)
        for pc, (insn, text) in enumerate(zip(program, statements(program, arch), strict=True))
    ]


def disassemble(program: Sequence[Insn], arch: Arch | str | None = None) -> str:
    """The full listing; names resolve for ``arch``, else the arch the program checks."""
    return LISTING_HEADER + "".join(line + "\n" for line in listing_lines(program, arch))
