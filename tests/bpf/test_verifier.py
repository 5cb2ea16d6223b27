"""The verifier against the kernel's rules, and against the real kernel.

The corpus below holds, for every rule, programs the kernel refuses (each written
from the kernel source, not from callgate's verifier), plus programs that look
wrong but that the kernel installs. The kernel tests install them in forked
children and compare verdicts.
"""

from __future__ import annotations

import errno
import pickle

import pytest
from bpf_oracle import guarded, kernel_verdicts, require_kernel
from bpf_strategies import any_insns, valid_programs
from hypothesis import HealthCheck, given, settings, strategies as st

from callgate.bpf import actions, opcodes as op
from callgate.bpf.insn import Insn, pack
from callgate.bpf.verifier import RULES, VerifierError, verify

LD_W_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
RET_K = op.BPF_RET | op.BPF_K
RET_A = op.BPF_RET | op.BPF_A
JA = op.BPF_JMP | op.BPF_JA
JEQ_K = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
ALLOW = Insn(RET_K, k=actions.SECCOMP_RET_ALLOW)
LD_NR = Insn(LD_W_ABS, k=0)

# (name, program, rule, index of the instruction named) — every one refused by Linux.
INVALID: list[tuple[str, list[Insn], str, int | None]] = [
    ("empty", [], "length", None),
    ("too long", [ALLOW] * (op.BPF_MAXINSNS + 1), "length", None),
    ("unknown code", [Insn(0x08), ALLOW], "opcode", 0),
    ("stray high bit on RET", [Insn(0x8000 | RET_K, k=actions.SECCOMP_RET_ALLOW)], "opcode", 0),
    ("stray bit on a load", [Insn(LD_W_ABS | 0x100), ALLOW], "opcode", 0),
    ("NEG with X bit", [Insn(op.BPF_ALU | op.BPF_NEG | op.BPF_X), ALLOW], "opcode", 0),
    ("MOD by K", [Insn(op.BPF_ALU | op.BPF_MOD | op.BPF_K, k=3), ALLOW], "opcode", 0),
    ("MOD by X", [Insn(op.BPF_ALU | op.BPF_MOD | op.BPF_X), ALLOW], "opcode", 0),
    ("half-word load", [Insn(op.BPF_LD | op.BPF_H | op.BPF_ABS, k=0), ALLOW], "opcode", 0),
    ("byte load", [Insn(op.BPF_LD | op.BPF_B | op.BPF_ABS, k=4), ALLOW], "opcode", 0),
    ("indirect load", [Insn(op.BPF_LD | op.BPF_W | op.BPF_IND, k=0), ALLOW], "opcode", 0),
    ("MSH load", [Insn(op.BPF_LDX | op.BPF_B | op.BPF_MSH, k=0), ALLOW], "opcode", 0),
    ("divide by constant 0", [Insn(op.BPF_ALU | op.BPF_DIV | op.BPF_K, k=0), ALLOW],
     "div-by-zero", 0),
    ("MOD by constant 0: bpf_check_classic sees it first",
     [Insn(op.BPF_ALU | op.BPF_MOD | op.BPF_K, k=0), ALLOW], "div-by-zero", 0),
    ("shift left by 32", [Insn(op.BPF_ALU | op.BPF_LSH | op.BPF_K, k=32), ALLOW],
     "shift-range", 0),
    ("shift right by 2**32-1",
     [Insn(op.BPF_ALU | op.BPF_RSH | op.BPF_K, k=0xFFFFFFFF), ALLOW], "shift-range", 0),
    ("load mem[16]", [Insn(op.BPF_LD | op.BPF_MEM, k=16), ALLOW], "mem-index", 0),
    ("store mem[16]", [Insn(op.BPF_ST, k=16), ALLOW], "mem-index", 0),
    ("store X to mem[99]", [Insn(op.BPF_STX, k=99), ALLOW], "mem-index", 0),
    ("load X from mem[16]", [Insn(op.BPF_LDX | op.BPF_MEM, k=16), ALLOW], "mem-index", 0),
    ("goto past the end", [Insn(JA, k=1), ALLOW], "jump-range", 0),
    ("goto as last instruction", [ALLOW, Insn(JA, k=0)], "jump-range", 1),
    ("jt past the end", [LD_NR, Insn(JEQ_K, 1, 0, 1), ALLOW], "jump-range", 1),
    ("jf past the end", [LD_NR, Insn(JEQ_K, 0, 2, 1), ALLOW], "jump-range", 1),
    ("load at 64", [Insn(LD_W_ABS, k=64), ALLOW], "load-offset", 0),
    ("load at 2**32-4", [Insn(LD_W_ABS, k=0xFFFFFFFC), ALLOW], "load-offset", 0),
    ("ancillary load: passes bpf_check_classic, not seccomp",
     [Insn(LD_W_ABS, k=0xFFFFF000), ALLOW], "load-offset", 0),
    ("unknown ancillary load", [Insn(LD_W_ABS, k=0xFFFFF040), ALLOW], "load-offset", 0),
    ("unaligned load", [Insn(LD_W_ABS, k=2), ALLOW], "load-alignment", 0),
    ("unaligned load near the end", [Insn(LD_W_ABS, k=61), ALLOW], "load-alignment", 0),
    ("no return at all", [LD_NR], "last-not-return", 0),
    ("ends with TAX", [ALLOW, Insn(op.BPF_MISC | op.BPF_TAX)], "last-not-return", 1),
    ("read before any write", [Insn(op.BPF_LD | op.BPF_MEM, k=0), Insn(RET_A)],
     "mem-uninit", 0),
    ("X read before any write", [Insn(op.BPF_LDX | op.BPF_MEM, k=15), ALLOW], "mem-uninit", 0),
    (
        "written on one branch only",
        [LD_NR, Insn(JEQ_K, 0, 1, 1000), Insn(op.BPF_ST, k=3),
         Insn(op.BPF_LD | op.BPF_MEM, k=3), Insn(RET_A)],
        "mem-uninit",
        3,
    ),
    (
        # Looks safe: only the goto at 3, which wrote mem[0], reaches 5. But the kernel's
        # linear pass carries the set of the RET at 4 (nothing written) into 5.
        "reachable only after a write, but after a RET: the kernel's linear pass refuses",
        [LD_NR, Insn(JEQ_K, 0, 2, 1000), Insn(op.BPF_ST, k=0), Insn(JA, k=1), ALLOW,
         Insn(op.BPF_LD | op.BPF_MEM, k=0), Insn(RET_A)],
        "mem-uninit",
        5,
    ),
    (
        "first failure in kernel order: classic loop (jump at 2) before the last-insn check",
        [Insn(op.BPF_ALU | op.BPF_MOD | op.BPF_K, k=1), LD_NR, Insn(JA, k=7), LD_NR],
        "jump-range",
        2,
    ),
    (
        "uninitialised read is found before seccomp's opcode whitelist",
        [Insn(op.BPF_ALU | op.BPF_MOD | op.BPF_K, k=1), Insn(op.BPF_LD | op.BPF_MEM, k=1),
         ALLOW],
        "mem-uninit",
        1,
    ),
]  # fmt: skip

# Programs that look suspicious but that Linux installs (harmless to the child that
# installs them: they ALLOW every syscall the child makes).
ACCEPTED: list[tuple[str, list[Insn]]] = [
    ("A = len, rewritten by seccomp to 64", [Insn(op.BPF_LD | op.BPF_W | op.BPF_LEN), ALLOW]),
    ("X = len", [Insn(op.BPF_LDX | op.BPF_W | op.BPF_LEN), ALLOW]),
    ("load of arch at offset 4", [Insn(LD_W_ABS, k=4), ALLOW]),
    ("load of ip's high word", [Insn(LD_W_ABS, k=12), ALLOW]),
    ("load of the last word, args[5] high", [Insn(LD_W_ABS, k=60), ALLOW]),
    ("goto the next instruction", [Insn(JA, k=0), ALLOW]),
    ("jt == jf == 0", [Insn(JEQ_K, 0, 0, 5), ALLOW]),
    ("divide by 2**32-1", [Insn(op.BPF_ALU | op.BPF_DIV | op.BPF_K, k=0xFFFFFFFF), ALLOW]),
    ("divide by X (X may be 0 at run time)",
     guarded([Insn(op.BPF_ALU | op.BPF_DIV | op.BPF_X), ALLOW])),
    ("shift by 31", [Insn(op.BPF_ALU | op.BPF_LSH | op.BPF_K, k=31), ALLOW]),
    ("shift by X (no range check)", [Insn(op.BPF_ALU | op.BPF_RSH | op.BPF_X), ALLOW]),
    ("mem[15] written then read", [Insn(op.BPF_STX, k=15), Insn(op.BPF_LD | op.BPF_MEM, k=15),
                                   ALLOW]),
    ("unreachable read of unwritten memory after a goto",
     [Insn(JA, k=1), Insn(op.BPF_LD | op.BPF_MEM, k=5), ALLOW]),
    ("unreachable code that does not end in a return", [ALLOW, LD_NR, ALLOW]),
    ("return of an undefined action", guarded([Insn(RET_K, k=0x7FFE1234), ALLOW])),
    ("jump offsets of 255", [Insn(JEQ_K, 255, 255, 0), *[ALLOW] * 256]),
    ("the longest program", [ALLOW] * op.BPF_MAXINSNS),
]  # fmt: skip


@pytest.mark.parametrize(("name", "program", "rule", "index"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_program_is_refused_with_its_rule(name, program, rule, index):
    with pytest.raises(VerifierError) as caught:
        verify(program)
    err = caught.value
    assert (err.rule, err.index) == (rule, index)
    assert isinstance(err, ValueError)
    message = str(err)
    assert rule in message and RULES[rule] in message
    if index is not None:
        insn = program[index]
        assert f"instruction {index} " in message
        assert f"code={insn.code:#06x}" in message
        assert f"jt={insn.jt} jf={insn.jf} k={insn.k:#x}" in message


@pytest.mark.parametrize(("name", "program"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_corner_case_is_accepted(name, program):
    verify(program)


def test_error_survives_pickling():
    """Errors cross process boundaries (forked children, the kernel worker)."""
    with pytest.raises(VerifierError) as caught:
        verify([Insn(JA, k=1), ALLOW])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.rule, copy.index, copy.insn, str(copy)) == (
        "jump-range",
        0,
        Insn(JA, k=1),
        str(caught.value),
    )


def test_every_rule_has_a_corpus_entry():
    assert {rule for _, _, rule, _ in INVALID} == set(RULES) - {"field-range"}


@pytest.mark.parametrize(
    "insn",
    [
        Insn(0x10000),
        Insn(RET_K, jt=256),
        Insn(RET_K, jf=-1),
        Insn(RET_K, k=2**32),
        Insn(6.0),  # equal to RET K as a dict key, but not an instruction field
        Insn(RET_K, k="0"),
    ],
)
def test_fields_that_do_not_fit_sock_filter_are_refused(insn):
    with pytest.raises(VerifierError) as caught:
        verify([insn])
    assert caught.value.rule == "field-range"


@settings(max_examples=100, deadline=None)
@given(valid_programs(max_insns=40))
def test_generated_valid_programs_pass(program):
    verify(program)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_insns(), max_size=12))
def test_arbitrary_input_gives_a_verdict_never_a_crash(program):
    try:
        verify(program)
    except VerifierError as err:
        assert err.rule in RULES
        assert err.index is None or 0 <= err.index < len(program)


# --- against the real kernel ------------------------------------------------------------

# callgate.kernel.binding.install_filter refuses more than 4096 instructions itself, so the
# kernel sees that one through a hand-made sock_fprog (test_kernel_refuses_4097_instructions).
KERNEL_INVALID = [case for case in INVALID if case[0] != "too long"]


def test_kernel_refuses_the_invalid_corpus():
    """Every corpus program gets EINVAL from seccomp()."""
    require_kernel()
    verdicts = kernel_verdicts([program for _, program, _, _ in KERNEL_INVALID])
    refused = {name: v for (name, *_), v in zip(KERNEL_INVALID, verdicts, strict=True)}
    assert refused == {name: errno.EINVAL for name, *_ in KERNEL_INVALID}


def test_kernel_refuses_4097_instructions():
    require_kernel()
    from callgate.arch import native_arch
    from callgate.kernel.binding import ffi, raw_syscall, set_no_new_privs
    from callgate.kernel.child import run_in_child

    raw = pack([ALLOW] * (op.BPF_MAXINSNS + 1))

    def attempt() -> int:
        set_no_new_privs()
        filters = ffi.new("struct sock_filter[]", op.BPF_MAXINSNS + 1)
        ffi.memmove(filters, raw, len(raw))
        fprog = ffi.new("struct sock_fprog *", {"len": op.BPF_MAXINSNS + 1, "filter": filters})
        seccomp_set_mode_filter = 1
        return raw_syscall(native_arch().number("seccomp"), seccomp_set_mode_filter, 0, fprog)[1]

    assert run_in_child(attempt).unwrap() == errno.EINVAL


def test_kernel_accepts_the_corner_cases():
    require_kernel()
    verdicts = kernel_verdicts([program for _, program in ACCEPTED])
    assert dict(zip([n for n, _ in ACCEPTED], verdicts, strict=True)) == {
        name: 0 for name, _ in ACCEPTED
    }


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(valid_programs(max_insns=24), min_size=40, max_size=40))
def test_kernel_accepts_what_the_verifier_accepts(programs):
    require_kernel()
    programs = [guarded(p) for p in programs]
    for program in programs:
        verify(program)
    assert kernel_verdicts(programs) == [0] * len(programs)


@st.composite
def _mutated_programs(draw: st.DrawFn) -> list[Insn]:
    """A valid program with one field of one body instruction changed, or cut short."""
    program = guarded(draw(valid_programs(min_insns=2, max_insns=16)))
    index = draw(st.integers(3, len(program) - 1))
    insn = program[index]
    how = draw(st.sampled_from(("code", "k", "jt", "jf", "insn", "truncate")))
    if how == "truncate":
        return program[:index]
    if how == "insn":
        program[index] = draw(any_insns())
    elif how == "code":
        codes = st.sampled_from((0x08, 0x28, 0x94, 0x60, 0x61, 0x02, 0x03, 0x34, 0x64, 0x05))
        program[index] = insn._replace(code=draw(codes | st.integers(0, 0xFF)))
    elif how == "k":
        edges = st.sampled_from((0, 1, 2, 15, 16, 31, 32, 60, 63, 64, 0xFFFFF000, 0xFFFFFFFF))
        program[index] = insn._replace(k=draw(edges))
    else:
        program[index] = insn._replace(**{how: draw(st.integers(0, 20))})
    return program


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_mutated_programs(), min_size=40, max_size=40))
def test_kernel_and_verifier_agree_on_mutated_programs(programs):
    """Differential: near-valid programs are accepted or refused by both alike."""
    require_kernel()

    def verdict(program: list[Insn]) -> int:
        try:
            verify(program)
        except VerifierError:
            return errno.EINVAL
        return 0

    ours = [verdict(p) for p in programs]
    assert kernel_verdicts(programs) == ours
