"""Three-way agreement: reference interpreter == compiled evaluator == the real kernel.

(Constant-action claims for the probed numbers are checked on the same calls.)

Each generated program sits behind a guard that allows every syscall below 1000,
so the child that installs it keeps working; the probes call unassigned numbers
1000..1010 with chosen args. The kernel sees the real instruction pointer of
libc's ``syscall()`` and the native arch, and so do the interpreter and the
compiled function. The outcome the kernel shows (errno, return value, SIGSYS
trap data, death by SIGSYS) is predicted from the interpreter's u32 result by
the kernel's own rules (:func:`bpf_oracle.expected_outcome`).
"""

from __future__ import annotations

import pytest
from bpf_oracle import PROBE_NR_BASE, expected_outcome, guarded, require_kernel
from bpf_strategies import default_constants, known_actions, u64s, valid_programs
from hypothesis import HealthCheck, given, settings, strategies as st

from callgate.arch import native_arch
from callgate.bpf import actions, compile_program, constant_actions, interpret, opcodes as op
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import U32_MASK, SeccompData

CALLS_PER_PROGRAM = 6
# Unassigned numbers; the edges check that nr is compared as u32 (-1, INT_MIN, the x32 bit).
NRS = st.integers(PROBE_NR_BASE, PROBE_NR_BASE + 10) | st.sampled_from(
    (0xFFFFFFFF, 0x80000000, 0x40000000 | PROBE_NR_BASE)
)


@pytest.fixture(scope="module")
def ip() -> int:
    require_kernel()
    from callgate.kernel.child import syscall_instruction_pointer

    return syscall_instruction_pointer()


def _check(program: list[Insn], calls: list[tuple[int, tuple[int, ...]]], ip: int) -> None:
    from callgate.kernel.child import probe_syscalls

    arch = native_arch().audit_arch
    function = compile_program(program)
    # Constant-action claims are checked against the same calls: the kernel must agree too.
    constant = constant_actions(program, arch, {nr for nr, _ in calls})
    predicted = []
    for nr, args in calls:
        data = SeccompData(nr, arch, ip, args)
        ret = interpret(program, data).ret
        assert function(nr, arch, ip, *args) == ret, f"compiled differs on {data}"
        assert constant.get(nr, ret) == ret, f"constant claim {constant[nr]:#x} wrong on {data}"
        predicted.append(expected_outcome(ret))
    observed = [tuple(o) for o in probe_syscalls(program, calls)]
    assert observed == predicted, f"kernel differs for {program} on {calls}"


def _calls(ip: int) -> st.SearchStrategy[list[tuple[int, tuple[int, ...]]]]:
    near = st.sampled_from((ip, ip & U32_MASK, ip >> 32)) | st.integers(PROBE_NR_BASE, 1010)
    arg = u64s() | near
    return st.lists(
        st.tuples(NRS, st.tuples(*[arg] * 6)),
        min_size=CALLS_PER_PROGRAM,
        max_size=CALLS_PER_PROGRAM,
    )


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_interpreter_compiled_and_kernel_agree(ip, data):
    """120 programs x 6 calls = 720 kernel-checked cases."""
    ip_words = st.sampled_from((ip & U32_MASK, ip >> 32))
    # Known actions as immediates too, so RET A often returns a meaningful action.
    constants = default_constants() | ip_words | known_actions()
    # RET K returns defined actions (RET A brings undefined ones often enough).
    returns = known_actions()
    body = data.draw(valid_programs(max_insns=20, constants=constants, returns=returns))
    _check(guarded(body), data.draw(_calls(ip)), ip)


def _returns_arg0_low() -> list[Insn]:
    return guarded([Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, k=16), Insn(op.BPF_RET | op.BPF_A)])


EVERY_ACTION = [
    actions.SECCOMP_RET_ALLOW,
    actions.SECCOMP_RET_LOG,
    actions.SECCOMP_RET_TRACE | 7,
    actions.SECCOMP_RET_USER_NOTIF,
    actions.SECCOMP_RET_ERRNO,  # errno 0: the call "succeeds" with 0
    actions.SECCOMP_RET_ERRNO | 1,
    actions.SECCOMP_RET_ERRNO | 4095,
    actions.SECCOMP_RET_ERRNO | 4096,  # capped at MAX_ERRNO
    actions.SECCOMP_RET_ERRNO | 0xFFFF,
    actions.SECCOMP_RET_TRAP,
    actions.SECCOMP_RET_TRAP | 0xBEEF,
    actions.SECCOMP_RET_KILL_THREAD,
    actions.SECCOMP_RET_KILL_PROCESS,
    0x7FFE0000,  # undefined actions act as KILL_PROCESS
    0x00010000,
]


def test_every_action_and_its_data(ip):
    """RET A with A = args[0]: one program shows how each action reaches the caller."""
    calls = [(PROBE_NR_BASE, (ret, 0, 0, 0, 0, 0)) for ret in EVERY_ACTION]
    _check(_returns_arg0_low(), calls, ip)


def _x_op_program(alu: int) -> list[Insn]:
    """X = args[0]; A = args[1]; A = A <op> X; return A."""
    return guarded(
        [
            Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, k=16),
            Insn(op.BPF_MISC | op.BPF_TAX),
            Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, k=24),
            Insn(op.BPF_ALU | alu | op.BPF_X),
            Insn(op.BPF_RET | op.BPF_A),
        ]
    )


ERRNO = actions.SECCOMP_RET_ERRNO
# (operation, X, A, A <op> X worked out by hand)
X_CORNERS = [
    (op.BPF_RSH, 35, (ERRNO | 7) << 3, ERRNO | 7),  # shift by 35 & 31 = 3
    (op.BPF_RSH, 32, ERRNO | 9, ERRNO | 9),  # 32 & 31 = 0: unchanged, not 0
    (op.BPF_RSH, 0xFFFFFFE1, (ERRNO | 8) << 1, ERRNO | 8),
    (op.BPF_RSH, 31, 0x80000000, 1),  # 1 is KILL_THREAD with data 1
    (op.BPF_LSH, 33, (ERRNO | 4) >> 1, ERRNO | 4),
    (op.BPF_LSH, 32, ERRNO | 3, ERRNO | 3),
    (op.BPF_DIV, 0, ERRNO | 1, 0),  # A / 0 ends the filter with 0: KILL_THREAD
    (op.BPF_DIV, 2, (ERRNO | 7) * 2, ERRNO | 7),
    (op.BPF_DIV, 0xFFFFFFFF, 0xFFFFFFFF, 1),
]


@pytest.mark.parametrize("alu", [op.BPF_RSH, op.BPF_LSH, op.BPF_DIV])
def test_shift_by_x_and_division_by_x_zero_match_the_kernel(ip, alu):
    """The run-time corners cBPF leaves open: shifts by X use ``X & 31``, ``A / 0`` is 0."""
    program = _x_op_program(alu)
    corners = [(x, a, result) for operation, x, a, result in X_CORNERS if operation == alu]
    for x, a, result in corners:
        data = SeccompData(PROBE_NR_BASE, native_arch().audit_arch, ip, (x, a, 0, 0, 0, 0))
        assert interpret(program, data).ret == result
    _check(program, [(PROBE_NR_BASE, (x, a, 0, 0, 0, 0)) for x, a, _ in corners], ip)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_long_programs_agree(ip, data):
    """Hundreds of instructions: long jumps, many joins, sections in the compiled code."""
    constants = default_constants() | known_actions()
    body = data.draw(
        valid_programs(min_insns=150, max_insns=400, constants=constants, returns=known_actions())
    )
    _check(guarded(body), data.draw(_calls(ip)), ip)


def test_nr_is_compared_unsigned(ip):
    """-1 and INT_MIN are above 0x7fffffff for the filter, in the kernel and here."""
    program = guarded(
        [
            Insn(op.BPF_JMP | op.BPF_JGT | op.BPF_K, 0, 1, 0x7FFFFFFF),  # A is still nr
            Insn(op.BPF_RET | op.BPF_K, k=ERRNO | 1),
            Insn(op.BPF_RET | op.BPF_K, k=ERRNO | 2),
        ]
    )
    nrs = (PROBE_NR_BASE, 0x80000000, 0xFFFFFFFF, 0x40000000 | PROBE_NR_BASE)
    arch = native_arch().audit_arch
    by_hand = [ERRNO | 2, ERRNO | 1, ERRNO | 1, ERRNO | 2]
    assert [interpret(program, SeccompData(nr, arch, ip)).ret for nr in nrs] == by_hand
    _check(program, [(nr, (0,) * 6) for nr in nrs], ip)
