"""Round trip: raw -> ``disasm`` text -> ``asm`` gives back the identical bytes.

Corpus: a hand-written file covering every instruction class (tests/data/bpf),
seccomp-tools' own example texts, real filters libseccomp exports (pyseccomp), and
hypothesis programs: verifier-valid ones from ``tests/bpf_strategies.py`` and
arbitrary 8-byte records, which must survive too.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest
from bpf_strategies import any_programs, valid_programs
from conftest import require
from hypothesis import given, settings, strategies as st

from callgate.arch import get_arch, known_arches
from callgate.asm.assembler import assemble
from callgate.asm.disassembler import disassemble
from callgate.asm.formats import read_program, render
from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn, pack, unpack

try:
    import pyseccomp
except (ImportError, OSError):
    pyseccomp = None

DATA = Path(__file__).resolve().parent.parent / "data" / "bpf"
CORPUS = sorted(DATA.glob("**/*.asm"))


def round_trip(program: list[Insn], arch: str | None) -> None:
    text = disassemble(program, arch)
    again = assemble(text, arch)
    assert pack(again) == pack(program), text


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(DATA)))
@pytest.mark.parametrize("arch", ["x86_64", "aarch64", None])
def test_corpus_round_trips(path, arch):
    program = assemble(path.read_text(), "x86_64")  # the texts are written for amd64
    round_trip(program, arch)


def test_corpus_covers_every_instruction_class():
    seen = set()
    for path in CORPUS:
        seen |= {op.bpf_class(i.code) for i in assemble(path.read_text(), "x86_64")}
    assert seen == set(range(8))


def _export(f) -> list[Insn]:
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return unpack(out.read())


def _libseccomp_filters():
    s = pyseccomp
    # A container-runtime-like allowlist with argument checks, binary-tree optimised.
    docker = s.SyscallFilter(s.ERRNO(errno.EPERM))
    docker.set_attr(s.Attr.CTL_OPTIMIZE, 2)
    for name in (
        "read write openat close fstat lseek mmap mprotect munmap brk rt_sigaction "
        "rt_sigprocmask ioctl pread64 pwrite64 readv writev access pipe select sched_yield "
        "mremap madvise dup dup2 nanosleep getpid sendfile connect accept sendto recvfrom "
        "exit exit_group wait4 kill uname fcntl flock fsync getdents64 getcwd chdir rename "
        "mkdir rmdir unlink readlink umask gettimeofday getuid getgid futex epoll_wait"
    ).split():
        docker.add_rule(s.ALLOW, name)
    for persona in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        docker.add_rule(s.ALLOW, "personality", s.Arg(0, s.EQ, persona))
    docker.add_rule(s.ALLOW, "clone", s.Arg(0, s.MASKED_EQ, 0x7E020000, 0))
    docker.add_rule(s.ERRNO(errno.EAFNOSUPPORT), "socket", s.Arg(0, s.EQ, 40))
    docker.add_rule(s.ALLOW, "socket", s.Arg(0, s.NE, 40))
    # Three arches, every action, every comparison, 64-bit operands.
    multi = s.SyscallFilter(s.KILL_PROCESS)
    multi.add_arch(s.Arch.X86)
    multi.add_arch(s.Arch.X32)
    multi.add_rule(s.ALLOW, "read")
    multi.add_rule(s.LOG, "write", s.Arg(2, s.GT, 0x1_0000_0000))
    multi.add_rule(s.TRAP, "mmap", s.Arg(2, s.MASKED_EQ, 0x4, 0x4))
    multi.add_rule(s.TRACE(7), "close", s.Arg(0, s.LT, 3))
    multi.add_rule(s.ERRNO(errno.EACCES), "openat", s.Arg(2, s.GE, 0o100), s.Arg(1, s.LE, 5))
    multi.add_rule(s.NOTIFY, "mkdirat")
    multi.add_rule(s.KILL_THREAD, "ptrace")
    # aarch64 only.
    arm = s.SyscallFilter(s.ALLOW)
    arm.remove_arch(s.Arch.NATIVE)
    arm.add_arch(s.Arch.AARCH64)
    arm.add_rule(s.ERRNO(errno.ENOSYS), "openat", s.Arg(3, s.MASKED_EQ, 0o200000, 0o200000))
    arm.add_rule(s.KILL, "ptrace")
    return {"docker": _export(docker), "multi": _export(multi), "aarch64": _export(arm)}


@pytest.mark.parametrize("arch", [None, "x86_64", "x86", "aarch64"])
def test_libseccomp_exports_round_trip(arch):
    require(pyseccomp is not None, "pyseccomp (libseccomp)")
    for name, program in _libseccomp_filters().items():
        assert len(program) > 5, name
        round_trip(program, arch)
        assert ".insn" not in disassemble(program, arch), name  # real filters read as text


@settings(max_examples=300, deadline=None)
@given(valid_programs(max_insns=40), st.sampled_from([None, *known_arches()]))
def test_valid_programs_round_trip(program, arch):
    text = disassemble(program, arch)
    assert ".insn" not in text  # every verifier-valid instruction has a statement
    assert assemble(text, arch) == program


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=8 * 24).map(lambda b: b[: len(b) - len(b) % 8]))
def test_arbitrary_records_round_trip(raw):
    program = unpack(raw)
    assert pack(assemble(disassemble(program, "x86_64"), "x86_64")) == raw


@settings(max_examples=200, deadline=None)
@given(any_programs(max_insns=24))
def test_hostile_programs_round_trip(program):
    round_trip(program, None)


@settings(max_examples=100, deadline=None)
@given(valid_programs(max_insns=16), st.sampled_from(["raw", "hex", "asm"]))
def test_every_readable_output_format_reads_back(program, fmt):
    assert read_program(render(program, fmt, "x86_64"), "x86_64") == program


def _name_heavy_insns() -> st.SearchStrategy[Insn]:
    """Loads of arch/nr and comparisons against real AUDIT_ARCH values and syscall numbers,
    with short (sometimes out-of-range) jumps: where names, and arch inference, matter."""
    audits = [get_arch(name).audit_arch for name in known_arches()]
    return st.one_of(
        st.sampled_from([Insn(0x20, 0, 0, 0), Insn(0x20, 0, 0, 4), Insn(0x07), Insn(0x87)]),
        st.builds(
            Insn,
            st.sampled_from([0x15, 0x25, 0x35, 0x45, 0x1D]),
            st.integers(0, 4) | st.just(200),
            st.integers(0, 4) | st.just(200),
            st.sampled_from(audits) | st.integers(0, 460) | st.just(0x40000000),
        ),
        st.builds(Insn, st.just(0x06), st.just(0), st.just(0), st.sampled_from([0, 0x7FFF0000])),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(_name_heavy_insns(), max_size=20), st.sampled_from([None, *known_arches()]))
def test_name_heavy_programs_round_trip(program, arch):
    round_trip(program, arch)
