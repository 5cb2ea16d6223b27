"""Size and speed, as behaviour: the Docker-like profile compiles small and runs short paths.

Compile *time* is measured in benchmarks/bench_compile.py, never asserted here.
The path length is an instruction count, so it is a property of the program: on
the ~350-syscall Docker-like profile it must be no longer on average than
libseccomp's binary tree (``CTL_OPTIMIZE=2``) for the same policy, over every
syscall number of the arch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import require
from libseccomp_oracle import AVAILABLE, average_path_length, libseccomp_program, pyseccomp

from callgate.arch import native_arch
from callgate.bpf import compile_program, verify
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import load_policy
from callgate.policy.compiler import compile_section
from callgate.policy.reference import decide

PROFILE = Path(__file__).parents[2] / "policies" / "examples" / "docker-like.json"
ARCH = native_arch()


@pytest.fixture(scope="module")
def docker_section():
    section = load_policy(PROFILE, arch=ARCH.name).kernel
    allowed = {n for rule in section.rules for n in rule.names if n in ARCH.numbers}
    assert len(allowed) >= 300, "the profile should name about 350 syscalls"
    return section


def test_docker_profile_compiles_to_a_short_exact_program(docker_section):
    program = compile_section(docker_section, ARCH)
    verify(program)
    # 300+ allowed syscalls become a few dozen ranges: far fewer instructions than names.
    assert len(program) < 200
    fast = compile_program(program)
    for nr in [*ARCH.numbers.values(), 0x40000000, 0xFFFFFFFF, 1000, 0x7FFFFFFF]:
        for a0 in (0, 8, 40, 0x7E020000, 0xFFFFFFFF, 2**64 - 1):
            call = SeccompData.make(nr, ARCH.audit_arch, [a0, a0])
            assert fast(nr, call.arch, 0, *call.args) == decide(docker_section, ARCH, call)


def test_path_no_longer_than_libseccomp_binary_tree(docker_section):
    require(AVAILABLE, "pyseccomp (libseccomp)")
    if pyseccomp.system_arch() != ARCH.audit_arch:
        pytest.skip("libseccomp's native arch differs from callgate's native arch table")
    # libseccomp has no -ENOSYS stub (runc adds it outside libseccomp): compare without it.
    section = dataclasses.replace(docker_section, enosys_above=None)
    ours = compile_section(section, ARCH)
    theirs = libseccomp_program(section, ARCH, optimize=2)
    ours_fast, theirs_fast = compile_program(ours), compile_program(theirs)
    for nr in ARCH.numbers.values():
        for a0 in (0, 8, 40, 0x7E020000):
            args = (a0, 0, 0, 0, 0, 0)
            assert ours_fast(nr, ARCH.audit_arch, 0, *args) == theirs_fast(
                nr, ARCH.audit_arch, 0, *args
            )
    assert average_path_length(ours, ARCH) <= average_path_length(theirs, ARCH)
