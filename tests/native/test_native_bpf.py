"""``csrc/bpf.c``, the native core's filter: the C interpreter returns what the reference
interpreter returns on every verified program and record, it refuses to load anything its
memory safety does not allow, and a per-gate specialisation decides as the whole program."""

from __future__ import annotations

import struct

from bpf_strategies import any_programs, seccomp_datas, valid_programs
from hypothesis import given, settings, strategies as st
from native_helpers import require_native

from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.bpf.specialize import specialize
from callgate.bpf.verifier import VerifierError, verify
from callgate.native import gate as native_gate


def _c_program(program: list[Insn]) -> tuple[object, int]:
    core = native_gate.core()
    packed = native_gate.pack_program((i.code, i.jt, i.jf, i.k) for i in program)
    return core.ffi.from_buffer("cg_insn[]", packed) if packed else core.ffi.NULL, len(program)


def _c_data(data: SeccompData) -> object:
    core = native_gate.core()
    record = core.ffi.new("cg_seccomp_data *")
    core.ffi.memmove(record, data.pack(), 64)
    return record


def _run(program: list[Insn], data: SeccompData) -> int:
    core = native_gate.core()
    prog, n = _c_program(program)
    assert core.lib.cg_bpf_check(prog, n) == 0, program
    return int(core.lib.cg_bpf_run(prog, n, _c_data(data)))


@settings(max_examples=1500, deadline=None)
@given(program=valid_programs(max_insns=40), data=seccomp_datas())
def test_c_interpreter_returns_what_the_reference_returns(program, data):
    require_native()
    assert _run(program, data) == interpret(program, data).ret


@settings(max_examples=600, deadline=None)
@given(program=valid_programs(max_insns=40), data=seccomp_datas(), nr=st.integers(0, 2**32 - 1))
def test_a_specialised_program_decides_as_the_whole_one(program, data, nr):
    """The binding runs specialize(program, nr, arch): the same answer for that nr/arch."""
    require_native()
    data = SeccompData(nr, data.arch, data.instruction_pointer, data.args)
    short = list(specialize(program, nr, data.arch))
    assert _run(short, data) == interpret(program, data).ret


@settings(max_examples=1500, deadline=None)
@given(program=any_programs(max_insns=12))
def test_c_loads_only_what_it_can_run_safely(program):
    """Arbitrary instruction soup: C accepts no program the verifier refuses for a reason C
    depends on, and accepts every program the verifier accepts. (The kernel's mem-uninit
    rule is the verifier's alone: C zeroes scratch memory, as the reference does.)"""
    require_native()
    core = native_gate.core()
    try:
        fields_ok = all(0 <= i.code <= 0xFFFF and 0 <= i.jt <= 0xFF and 0 <= i.jf <= 0xFF
                        and 0 <= i.k <= 0xFFFFFFFF for i in program)
    except TypeError:
        fields_ok = False
    if not fields_ok:
        return
    prog, n = _c_program(program)
    accepted = core.lib.cg_bpf_check(prog, n) == 0
    try:
        verify(program)
        verified = True
    except VerifierError as exc:
        verified = False
        if accepted:
            assert exc.rule == "mem-uninit", exc
    if verified:
        assert accepted
    if accepted:  # whatever it is, running it stays inside the program (and returns)
        result = core.lib.cg_bpf_run(prog, n, _c_data(SeccompData(1, 2, 3, (4, 5, 6, 7, 8, 9))))
        assert 0 <= result <= 0xFFFFFFFF


def test_c_refuses_the_programs_its_memory_safety_rests_on():
    require_native()
    core = native_gate.core()
    ret = Insn(0x06, 0, 0, 0x7FFF0000)
    refused = {
        "empty": [],
        "no return last": [Insn(0x00, 0, 0, 1)],
        "load past the record": [Insn(0x20, 0, 0, 64), ret],
        "unaligned load": [Insn(0x20, 0, 0, 2), ret],
        "scratch index 16": [Insn(0x02, 0, 0, 16), ret],
        "jump past the end": [Insn(0x15, 1, 0, 0), ret],
        "goto past the end": [Insn(0x05, 0, 0, 1), ret],
        "division by constant 0": [Insn(0x34, 0, 0, 0), ret],
        "shift by 32": [Insn(0x64, 0, 0, 32), ret],
        "packet load (not seccomp)": [Insn(0x28, 0, 0, 0), ret],
        "4097 instructions": [ret] * 4097,
    }
    for why, program in refused.items():
        prog, n = _c_program(program)
        assert core.lib.cg_bpf_check(prog, n) != 0, why
    prog, n = _c_program([ret])
    assert core.lib.cg_bpf_check(prog, n) == 0


def test_the_record_is_the_kernels_layout():
    """Word k of the C record is word k of SeccompData.pack(), for every k."""
    require_native()
    data = SeccompData(0x11223344, 0x55667788, 0x99AABBCCDDEEFF00,
                       tuple(0x0102030405060708 * (i + 1) & (2**64 - 1) for i in range(6)))
    packed = data.pack()
    for k in range(0, 64, 4):
        program = [Insn(0x20, 0, 0, k), Insn(0x16, 0, 0, 0)]  # A = word k; return A
        assert _run(program, data) == struct.unpack_from("<I", packed, k)[0]
