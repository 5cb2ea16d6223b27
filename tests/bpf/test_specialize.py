"""A gate's specialised filter answers exactly like the whole program, for its nr and arch."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from callgate.arch import AUDIT_ARCH_CALLGATE, Arch
from callgate.arch.gate_numbers import WASI_NUMBERS
from callgate.bpf import opcodes as op
from callgate.bpf.compiled import compile_program
from callgate.bpf.insn import Insn
from callgate.bpf.specialize import specialize
from callgate.policy import load_policy
from callgate.policy.compiler import compile_section

ROOT = Path(__file__).resolve().parents[2]
APP = {"probe": 0x1000, "probe1": 0x1001, "kv_get": 0x1002, "kv_put": 0x1003}
ARCH = Arch("callgate", AUDIT_ARCH_CALLGATE, {**WASI_NUMBERS, **APP})
POLICIES = [
    ROOT / "policies" / "default.toml",
    ROOT / "policies" / "default-fs.toml",
    ROOT / "policies" / "examples" / "stdout-only-plugin.toml",
    ROOT / "policies" / "examples" / "app-gates.toml",
]
INLINE = """
[gates]
default = "errno(EPERM)"
app_gates = ["probe", "probe1", "kv_get", "kv_put"]
[[gates.rules]]
names = ["fd_write", "probe"]
action = "allow"
args = [{index = 0, op = "le", value = 2},
        {index = 5, op = "masked_eq", value = 0xff00, value2 = 0x100}]
[[gates.rules]]
names = ["fd_read", "probe1", "kv_get"]
action = "log"
args = [{index = 1, op = "gt", value = 0x1_0000_0000}]
[[gates.rules]]
names = ["path_open"]
action = "trap"
"""


def _programs() -> list[tuple[str, list[Insn]]]:
    out = []
    for path in POLICIES:
        if path.exists():
            policy = load_policy(path, gate_names=list(APP))
            if policy.gates is not None:
                out.append((path.name, compile_section(policy.gates, ARCH)))
    out.append(("inline", compile_section(load_policy(INLINE).gates, ARCH)))
    return out


PROGRAMS = _programs()
NUMBERS = sorted({*ARCH.numbers.values(), 46, 0xFFF, 0x1004, 0xFFFFFFFF})
u64 = st.integers(0, 2**64 - 1)
interesting = st.sampled_from([0, 1, 2, 3, 0xFF, 0x100, 0x1FF, 2**32, 2**32 + 1, 2**64 - 1])


@pytest.mark.parametrize(("name", "program"), PROGRAMS, ids=[n for n, _ in PROGRAMS])
@settings(max_examples=60, deadline=None)
@given(args=st.lists(st.one_of(u64, interesting), min_size=6, max_size=6),
       ip=st.integers(0, 100))
def test_specialised_filter_equals_the_program(name, program, args, ip):
    whole = compile_program(program)
    for arch in (AUDIT_ARCH_CALLGATE, 0xC000003E):
        for nr in NUMBERS:
            part = compile_program(specialize(program, nr, arch))
            assert part(nr, arch, ip, *args) == whole(nr, arch, ip, *args), (name, nr, arch)


def test_specialisation_removes_the_header_and_dispatch():
    _, program = PROGRAMS[-1]
    special = specialize(program, ARCH.numbers["fd_write"], AUDIT_ARCH_CALLGATE)
    assert len(special) < len(program)
    assert special[0].code == op.BPF_LD | op.BPF_IMM
    loads = [i.k for i in special if i.code == op.BPF_LD | op.BPF_W | op.BPF_ABS]
    assert 0 not in loads and 4 not in loads  # neither nr nor arch is read again


def test_a_program_that_starts_with_args_is_left_alone():
    program = [Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 16),
               Insn(op.BPF_RET | op.BPF_A, 0, 0, 0)]
    assert specialize(program, 1, AUDIT_ARCH_CALLGATE) == tuple(program)
