"""Hypothesis strategies for classic-BPF seccomp programs and ``seccomp_data`` records.

Shared by every bpf test (import as ``from bpf_strategies import valid_programs``).
``valid_programs`` builds programs the kernel accepts by construction, following
the rules of ``bpf_check_classic`` and ``seccomp_check_filter`` directly rather
than asking callgate's verifier, so the verifier can be tested against it:

- every opcode seccomp allows appears: loads of ``seccomp_data`` words, ``len``,
  immediates and scratch memory into A and X; stores; every ALU op with K and X;
  NEG; TAX/TXA; JA and every conditional jump with K and X; RET K and RET A;
- jumps go forward and stay inside the program; DIV by K never divides by 0;
  shifts by K stay below 32;
- scratch memory is written before it is read, as the kernel's linear
  ``check_load_and_stores`` pass judges it: a load of a cell that pass would
  call uninitialised is repaired (redirected to a valid cell, or turned into a
  store of that cell).
"""

from __future__ import annotations

from hypothesis import strategies as st

from callgate.arch import get_arch
from callgate.bpf import actions, opcodes as op
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import SECCOMP_DATA_SIZE, SeccompData

U32_EDGES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
U64_EDGES = (
    *U32_EDGES,
    0x100000000,
    0x7FFFFFFFFFFFFFFF,
    0x8000000000000000,
    0xFFFFFFFF00000000,
    0xFFFFFFFFFFFFFFFF,
)
AUDIT_ARCH_X86_64 = get_arch("x86_64").audit_arch

# Action values the kernel does not define: they must act as KILL_PROCESS.
UNKNOWN_ACTIONS = (0x00010000, 0x00040000, 0x7FFE0000, 0x80010000, 0xFFFF0000)

ALU_OPS = (
    op.BPF_ADD,
    op.BPF_SUB,
    op.BPF_MUL,
    op.BPF_DIV,
    op.BPF_OR,
    op.BPF_AND,
    op.BPF_LSH,
    op.BPF_RSH,
    op.BPF_XOR,
)
COND_JUMPS = (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET)
_WORD_OFFSETS = tuple(range(0, SECCOMP_DATA_SIZE, 4))
_MEM_LOADS = (op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM)
# Instruction kinds, repeated to weight the draw toward loads and jumps.
_KINDS = (
    *("ld_abs",) * 3,
    "ldx",
    "ld_other",
    "st",
    *("alu",) * 2,
    "misc",
    *("jmp",) * 3,
    "ja",
    "ret",
)


def u32s() -> st.SearchStrategy[int]:
    """Any u32, with the edges where wraparound and signedness bugs live drawn often."""
    return st.sampled_from(U32_EDGES) | st.integers(0, 0xFFFFFFFF)


def u64s() -> st.SearchStrategy[int]:
    """Any u64, edges drawn often (high and low words that differ in sign bit)."""
    return st.sampled_from(U64_EDGES) | st.integers(0, 2**64 - 1) | st.integers(0, 0xFFFF)


def known_actions() -> st.SearchStrategy[int]:
    """Every action the kernel defines, with data (edges such as MAX_ERRNO drawn often)."""
    return st.builds(
        lambda action, data: action | data,
        # Weakest first: hypothesis favours early entries, and kills end a probe early.
        st.sampled_from(actions.PRECEDENCE[::-1]),
        st.sampled_from((0, 1, 13, 4095, 4096, 0xFFFF)) | st.integers(0, 0xFFFF),
    )


def return_values() -> st.SearchStrategy[int]:
    """Filter results: every known action with its data, unknown actions, raw u32s."""
    return known_actions() | st.sampled_from(UNKNOWN_ACTIONS) | u32s()


# Strategies built once: constructing them per instruction dominated generation time.
_KIND = st.sampled_from(_KINDS)
_LOAD_MODE = st.sampled_from((op.BPF_IMM, op.BPF_MEM, op.BPF_LEN))
_MEM_INDEX = st.integers(0, op.BPF_MEMWORDS - 1)
_STORE = st.sampled_from((op.BPF_ST, op.BPF_STX))
_ALU_OP = st.sampled_from((*ALU_OPS, op.BPF_NEG))
_SRC = st.sampled_from((op.BPF_K, op.BPF_X))
_SHIFT = st.integers(0, 31)
_DIVISOR = st.sampled_from((1, 2, 3, 0x10, 0xFFFFFFFF)) | st.integers(1, 0xFFFFFFFF)
_MISC = st.sampled_from((op.BPF_TAX, op.BPF_TXA))
_COND = st.sampled_from(COND_JUMPS)
_RET_A_ONE_IN = st.integers(0, 3)


def _jump_offset(draw: st.DrawFn, room: int) -> int:
    """A forward offset that lands inside the program (``room`` instructions follow)."""
    return draw(st.integers(0, min(room - 1, 0xFF)))


def _body_insn(
    draw: st.DrawFn,
    room: int,
    constants: st.SearchStrategy[int],
    returns: st.SearchStrategy[int],
    offsets: st.SearchStrategy[int],
) -> Insn:
    """One non-final instruction with ``room`` (>= 1) instructions after it."""
    kind = draw(_KIND)
    if kind == "ld_abs":
        return Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, k=draw(offsets))
    if kind in ("ldx", "ld_other"):
        cls = op.BPF_LDX if kind == "ldx" else op.BPF_LD
        mode = draw(_LOAD_MODE)
        if mode == op.BPF_IMM:
            return Insn(cls | op.BPF_IMM, k=draw(constants))
        if mode == op.BPF_MEM:
            return Insn(cls | op.BPF_MEM, k=draw(_MEM_INDEX))
        return Insn(cls | op.BPF_W | op.BPF_LEN)
    if kind == "st":
        return Insn(draw(_STORE), k=draw(_MEM_INDEX))
    if kind == "alu":
        alu = draw(_ALU_OP)
        if alu == op.BPF_NEG:
            return Insn(op.BPF_ALU | op.BPF_NEG)
        if draw(_SRC) == op.BPF_X:
            return Insn(op.BPF_ALU | alu | op.BPF_X)
        if alu in (op.BPF_LSH, op.BPF_RSH):
            k = draw(_SHIFT)
        elif alu == op.BPF_DIV:
            k = draw(_DIVISOR)
        else:
            k = draw(constants)
        return Insn(op.BPF_ALU | alu | op.BPF_K, k=k)
    if kind == "misc":
        return Insn(op.BPF_MISC | draw(_MISC))
    if kind == "jmp":
        cond = draw(_COND)
        src = draw(_SRC)
        k = draw(constants) if src == op.BPF_K else 0
        jt, jf = _jump_offset(draw, room), _jump_offset(draw, room)
        return Insn(op.BPF_JMP | cond | src, jt, jf, k)
    if kind == "ja":
        return Insn(op.BPF_JMP | op.BPF_JA, k=_jump_offset(draw, room))
    return _return_insn(draw, returns)


def _return_insn(draw: st.DrawFn, returns: st.SearchStrategy[int]) -> Insn:
    """RET K three times in four (its value is chosen); RET A otherwise."""
    if draw(_RET_A_ONE_IN) == 3:
        return Insn(op.BPF_RET | op.BPF_A)
    return Insn(op.BPF_RET | op.BPF_K, k=draw(returns))


def _targets(insn: Insn, pc: int) -> tuple[int, ...]:
    """Where a jump at ``pc`` may go next (empty for non-jumps)."""
    if op.bpf_class(insn.code) != op.BPF_JMP:
        return ()
    if op.bpf_op(insn.code) == op.BPF_JA:
        return (pc + 1 + insn.k,)
    return (pc + 1 + insn.jt, pc + 1 + insn.jf)


def repair_scratch_reads(program: list[Insn]) -> list[Insn]:
    """Make every scratch load pass the kernel's linear ``check_load_and_stores`` pass.

    Same dataflow as the kernel: a jump narrows its targets' masks and resets the
    running set to "all valid"; a return does not reset it.
    """
    everything = (1 << op.BPF_MEMWORDS) - 1
    masks = [everything] * len(program)
    valid = 0
    out = list(program)
    for pc, insn in enumerate(out):
        valid &= masks[pc]
        if insn.code in (op.BPF_ST, op.BPF_STX):
            valid |= 1 << insn.k
        elif insn.code in _MEM_LOADS and not valid >> insn.k & 1:
            if valid:
                cells = [i for i in range(op.BPF_MEMWORDS) if valid >> i & 1]
                out[pc] = insn._replace(k=cells[insn.k % len(cells)])
            else:
                store = op.BPF_ST if insn.code == op.BPF_LD | op.BPF_MEM else op.BPF_STX
                out[pc] = Insn(store, k=insn.k)
                valid |= 1 << insn.k
        targets = _targets(insn, pc)
        if targets:
            for target in targets:
                masks[target] &= valid
            valid = everything
    return out


def default_constants() -> st.SearchStrategy[int]:
    """Immediates: the unassigned syscall numbers tests call, small ints, u32 edges."""
    return st.integers(1000, 1010) | st.integers(0, 64) | u32s()


_DEFAULT_CONSTANTS = default_constants()
_DEFAULT_RETURNS = return_values()
_ANY_OFFSET = st.sampled_from(_WORD_OFFSETS)


@st.composite
def valid_programs(
    draw: st.DrawFn,
    min_insns: int = 1,
    max_insns: int = 24,
    constants: st.SearchStrategy[int] | None = None,
    returns: st.SearchStrategy[int] | None = None,
    load_offsets: st.SearchStrategy[int] | None = None,
) -> list[Insn]:
    """A program the kernel's seccomp verifier accepts, covering every allowed opcode.

    ``constants`` feeds immediates (loads, ALU and jump operands), ``returns`` the
    values of ``RET K``; both default to broad mixes with edge values.
    ``load_offsets`` chooses the ``seccomp_data`` words loaded (default: any).
    """
    constants = constants if constants is not None else _DEFAULT_CONSTANTS
    returns = returns if returns is not None else _DEFAULT_RETURNS
    offsets = load_offsets if load_offsets is not None else _ANY_OFFSET
    length = draw(st.integers(min_insns, max_insns))
    body = [
        _body_insn(draw, length - pc - 1, constants, returns, offsets) for pc in range(length - 1)
    ]
    return repair_scratch_reads([*body, _return_insn(draw, returns)])


def any_insns() -> st.SearchStrategy[Insn]:
    """Instructions with arbitrary field values: hostile input for decoders and the verifier."""
    return st.builds(
        Insn,
        st.integers(0, 0xFFFF) | st.sampled_from((0x00, 0x20, 0x06, 0x16, 0x15, 0x05, 0x84)),
        st.integers(0, 0xFF),
        st.integers(0, 0xFF),
        u32s(),
    )


def any_programs(max_insns: int = 16) -> st.SearchStrategy[list[Insn]]:
    """Arbitrary (mostly invalid) programs, including the empty one."""
    return st.lists(any_insns(), max_size=max_insns)


def seccomp_datas(
    nrs: st.SearchStrategy[int] | None = None,
    arch: st.SearchStrategy[int] | None = None,
    ip: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[SeccompData]:
    """``seccomp_data`` records; each field can be pinned by passing a strategy."""
    return st.builds(
        SeccompData,
        nrs if nrs is not None else st.integers(1000, 1010) | u32s(),
        arch if arch is not None else st.just(AUDIT_ARCH_X86_64) | u32s(),
        ip if ip is not None else u64s(),
        st.tuples(u64s(), u64s(), u64s(), u64s(), u64s(), u64s()),
    )
