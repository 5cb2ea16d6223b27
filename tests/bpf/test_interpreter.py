"""Semantics of the reference interpreter and the compiled evaluator.

Every expected value below is worked out by hand from the kernel's semantics
(32-bit unsigned arithmetic, DIV by X == 0 returns 0, shifts by X masked to 5
bits, ``len`` == 64), and both engines must produce it. Hypothesis then checks
the two engines against each other on generated programs, including with the
code generator forced into its rarely used paths.
"""

from __future__ import annotations

import pytest
from bpf_strategies import AUDIT_ARCH_X86_64, seccomp_datas, valid_programs
from hypothesis import HealthCheck, given, settings, strategies as st

from callgate.bpf import (
    Evaluator,
    compile_program,
    compiled as compiled_module,
    constant_actions,
    interpret,
    opcodes as op,
)
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import SeccompData
from callgate.bpf.verifier import VerifierError

LD = op.BPF_LD | op.BPF_W | op.BPF_ABS
RET_A = Insn(op.BPF_RET | op.BPF_A)
TXA = Insn(op.BPF_MISC | op.BPF_TXA)
TAX = Insn(op.BPF_MISC | op.BPF_TAX)

DATA = SeccompData.make(
    nr=1000,
    arch=AUDIT_ARCH_X86_64,
    args=(0x1, 0xFFFFFFFF, 0x80000000_00000021, 0xAABBCCDD_EEFF0011, 0, 0xFFFFFFFF_FFFFFFFF),
    ip=0x11223344_55667788,
)


def imm(k: int) -> Insn:
    return Insn(op.BPF_LD | op.BPF_IMM, k=k)


def immx(k: int) -> Insn:
    return Insn(op.BPF_LDX | op.BPF_IMM, k=k)


def alu(operation: int, k: int | None = None) -> Insn:
    if k is None:
        return Insn(op.BPF_ALU | operation | op.BPF_X)
    return Insn(op.BPF_ALU | operation | op.BPF_K, k=k)


def jump(cond: int, jt: int, jf: int, k: int | None = None) -> Insn:
    if k is None:
        return Insn(op.BPF_JMP | cond | op.BPF_X, jt, jf)
    return Insn(op.BPF_JMP | cond | op.BPF_K, jt, jf, k)


def ret(k: int) -> Insn:
    return Insn(op.BPF_RET | op.BPF_K, k=k)


# (name, program, expected return value on DATA)
CASES: list[tuple[str, list[Insn], int]] = [
    ("nr", [Insn(LD, k=0), RET_A], 1000),
    ("arch", [Insn(LD, k=4), RET_A], 0xC000003E),
    ("ip low word", [Insn(LD, k=8), RET_A], 0x55667788),
    ("ip high word", [Insn(LD, k=12), RET_A], 0x11223344),
    ("args[0] low", [Insn(LD, k=16), RET_A], 1),
    ("args[2] low", [Insn(LD, k=32), RET_A], 0x21),
    ("args[2] high", [Insn(LD, k=36), RET_A], 0x80000000),
    ("args[3] low", [Insn(LD, k=40), RET_A], 0xEEFF0011),
    ("args[3] high", [Insn(LD, k=44), RET_A], 0xAABBCCDD),
    ("args[5] high", [Insn(LD, k=60), RET_A], 0xFFFFFFFF),
    ("A = len", [Insn(op.BPF_LD | op.BPF_W | op.BPF_LEN), RET_A], 64),
    ("X = len", [Insn(op.BPF_LDX | op.BPF_W | op.BPF_LEN), TXA, RET_A], 64),
    ("A and X start at 0", [alu(op.BPF_ADD), RET_A], 0),
    ("add wraps", [imm(0xFFFFFFFF), alu(op.BPF_ADD, 2), RET_A], 1),
    ("sub wraps", [alu(op.BPF_SUB, 1), RET_A], 0xFFFFFFFF),
    ("mul wraps", [imm(0x10001), alu(op.BPF_MUL, 0x10000), RET_A], 0x10000),
    ("mul by X", [imm(0x80000000), immx(2), alu(op.BPF_MUL), RET_A], 0),
    ("div is unsigned", [imm(0xFFFFFFFF), alu(op.BPF_DIV, 2), RET_A], 0x7FFFFFFF),
    ("div by X", [imm(7), immx(2), alu(op.BPF_DIV), RET_A], 3),
    ("div by X == 0 returns 0", [imm(7), alu(op.BPF_DIV), ret(0x7FFF0000)], 0),
    ("neg", [imm(1), Insn(op.BPF_ALU | op.BPF_NEG), RET_A], 0xFFFFFFFF),
    ("neg 0", [Insn(op.BPF_ALU | op.BPF_NEG), RET_A], 0),
    ("neg INT_MIN", [imm(0x80000000), Insn(op.BPF_ALU | op.BPF_NEG), RET_A], 0x80000000),
    ("and/or/xor", [imm(0xF0F0), alu(op.BPF_AND, 0xFF00), alu(op.BPF_OR, 1),
                    alu(op.BPF_XOR, 0xF001), RET_A], 0x0),
    ("lsh by 31", [imm(3), alu(op.BPF_LSH, 31), RET_A], 0x80000000),
    ("rsh by 31", [imm(0x80000000), alu(op.BPF_RSH, 31), RET_A], 1),
    ("lsh by X uses X & 31", [imm(3), immx(33), alu(op.BPF_LSH), RET_A], 6),
    ("rsh by X == 32 shifts by 0", [imm(0x80), immx(32), alu(op.BPF_RSH), RET_A], 0x80),
    ("tax/txa", [imm(5), TAX, imm(0), TXA, RET_A], 5),
    ("scratch memory", [imm(9), Insn(op.BPF_ST, k=15), immx(4), Insn(op.BPF_STX, k=0),
                        Insn(op.BPF_LD | op.BPF_MEM, k=0), Insn(op.BPF_LDX | op.BPF_MEM, k=15),
                        alu(op.BPF_SUB), RET_A], 0xFFFFFFFB),
    ("jeq taken", [Insn(LD, k=0), jump(op.BPF_JEQ, 0, 1, 1000), ret(1), ret(2)], 1),
    ("jgt is unsigned", [imm(0x80000000), jump(op.BPF_JGT, 0, 1, 1), ret(1), ret(2)], 1),
    ("jgt equal is false", [imm(5), jump(op.BPF_JGT, 0, 1, 5), ret(1), ret(2)], 2),
    ("jge equal is true", [imm(5), jump(op.BPF_JGE, 0, 1, 5), ret(1), ret(2)], 1),
    ("jset no common bit", [imm(0b1010), jump(op.BPF_JSET, 0, 1, 0b0101), ret(1), ret(2)], 2),
    ("jset common bit", [imm(0b1010), jump(op.BPF_JSET, 0, 1, 0b0010), ret(1), ret(2)], 1),
    ("jeq X", [imm(7), immx(7), jump(op.BPF_JEQ, 1, 0), ret(1), ret(2)], 2),
    ("jgt X unsigned", [imm(1), immx(0xFFFFFFFF), jump(op.BPF_JGT, 0, 1), ret(1), ret(2)], 2),
    ("ja skips", [Insn(op.BPF_JMP | op.BPF_JA, k=1), ret(1), ret(2)], 2),
    ("return k", [ret(0x0005000D)], 0x0005000D),
]  # fmt: skip


def _compiled(program: list[Insn], data: SeccompData) -> int:
    return compile_program(program)(data.nr, data.arch, data.instruction_pointer, *data.args)


def _interpreted(program: list[Insn], data: SeccompData) -> int:
    return interpret(program, data).ret


ENGINES = {"interpret": _interpreted, "compiled": _compiled}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("name", "program", "expected"), CASES, ids=[c[0] for c in CASES])
def test_semantics(engine, name, program, expected):
    assert ENGINES[engine](program, DATA) == expected


def test_path_lists_executed_instructions():
    program = [
        Insn(LD, k=0),
        jump(op.BPF_JEQ, 2, 0, 1000),  # taken: 1000 == nr
        ret(1),
        ret(2),
        Insn(op.BPF_JMP | op.BPF_JA, k=1),
        ret(3),
        RET_A,
    ]
    execution = interpret(program, DATA)
    assert (execution.ret, execution.path) == (1000, (0, 1, 4, 6))
    # (A, X) as each executed line found them: nr was loaded by line 0.
    assert execution.registers == ((0, 0), (1000, 0), (1000, 0), (1000, 0))


def test_div_by_zero_path_ends_at_the_division():
    program = [imm(7), alu(op.BPF_DIV), ret(0x7FFF0000)]
    assert interpret(program, DATA).path == (0, 1)


def test_negative_nr_is_seen_as_u32():
    data = SeccompData.make(-1, AUDIT_ARCH_X86_64)
    assert interpret([Insn(LD, k=0), RET_A], data).ret == 0xFFFFFFFF
    assert interpret([Insn(LD, k=0), RET_A], data._replace(nr=-1)).ret == 0xFFFFFFFF


@pytest.mark.parametrize("run", [interpret, lambda p, d: compile_program(p)])
def test_engines_refuse_what_the_kernel_refuses(run):
    with pytest.raises(VerifierError) as caught:
        run([Insn(op.BPF_LD | op.BPF_MEM, k=0), RET_A], DATA)
    assert caught.value.rule == "mem-uninit"


def test_compiled_takes_args_and_ip_signed_or_unsigned():
    """Wasm hands i64 values to Python as signed ints; the same 64 bits must load the same."""
    program = [Insn(LD, k=12), TAX, Insn(LD, k=20), alu(op.BPF_ADD), TAX, Insn(LD, k=16),
               alu(op.BPF_XOR), RET_A]  # fmt: skip
    function = compile_program(program)
    signed = function(1000, AUDIT_ARCH_X86_64, -2, -1, 0, 0, 0, 0, 0)
    unsigned = function(1000, AUDIT_ARCH_X86_64, 2**64 - 2, 2**64 - 1, 0, 0, 0, 0, 0)
    # ip high 0xFFFFFFFF + args[0] high 0xFFFFFFFF = 0xFFFFFFFE, ^ args[0] low 0xFFFFFFFF = 1
    assert signed == unsigned == 1


def test_compiled_source_holds_plain_numbers_only():
    """An int subclass that formats itself as code must not reach the generated source."""

    class Sneaky(int):
        def __format__(self, spec: str) -> str:
            return "0 if __import__('os').system('false') else 0"

        __str__ = __repr__ = lambda self: format(self, "")  # type: ignore[assignment]

    program = [Insn(op.BPF_RET | op.BPF_K, k=Sneaky(0x7FFF0000))]
    source = compiled_module.compile_source(program)
    assert "import" not in source
    assert compile_program(program)(0, 0, 0, 0, 0, 0, 0, 0, 0) == 0x7FFF0000


def _agree(program: list[Insn], datas: list[SeccompData]) -> None:
    function = compile_program(program)
    for data in datas:
        expected = interpret(program, data).ret
        assert function(data.nr, data.arch, data.instruction_pointer, *data.args) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_programs(max_insns=40), st.lists(seccomp_datas(), min_size=1, max_size=8))
def test_compiled_agrees_with_interpreter(program, datas):
    _agree(program, datas)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_programs(max_insns=40), st.lists(seccomp_datas(), min_size=1, max_size=6))
def test_compiled_agrees_when_every_join_and_depth_becomes_a_section(program, datas):
    """Force the generator's out-of-line sections everywhere, where random programs rarely go."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiled_module, "INLINE_LIMIT", 0)
        patch.setattr(compiled_module, "MAX_DEPTH", 3)
        _agree(program, datas)


def test_long_chain_of_diamonds_compiles_without_blowup():
    """2**1000 paths: inlining them all would never finish; sections keep it linear."""
    body = []
    for i in range(1000):
        body += [jump(op.BPF_JSET, 0, 1, 1 << (i % 32)), alu(op.BPF_ADD, i)]
    program = [Insn(LD, k=16), *body, RET_A]
    source = compiled_module.compile_source(program)
    assert len(source.splitlines()) < 40 * len(program)
    data = DATA._replace(args=(0x0F0F0F0F, 0, 0, 0, 0, 0))
    _agree(program, [data, DATA])


def test_longest_program_compiles():
    """A 4095-instruction if/else-if chain: as deep as a program gets."""
    program = [Insn(LD, k=0)]
    for i in range(2046):
        program += [jump(op.BPF_JGT, 1, 0, i), ret(i)]  # nr <= i: return i
    program += [imm(7), RET_A]
    datas = [DATA._replace(nr=n) for n in (0, 5, 2045, 2046, 0xFFFFFFFF)]
    assert [interpret(program, d).ret for d in datas] == [0, 5, 2045, 7, 7]
    _agree(program, datas)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_programs(max_insns=32), st.lists(seccomp_datas(), min_size=1, max_size=8))
def test_evaluator_decides_like_the_interpreter(program, datas):
    nrs = range(1000, 1011)
    evaluator = Evaluator(program, AUDIT_ARCH_X86_64, nrs)
    assert evaluator.constant == constant_actions(program, AUDIT_ARCH_X86_64, nrs)
    for data in datas:
        data = data._replace(arch=AUDIT_ARCH_X86_64)
        expected = interpret(program, data).ret
        assert evaluator.decide(data.nr, data.instruction_pointer, data.args) == expected
