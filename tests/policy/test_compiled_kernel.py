"""Compiled kernel policies, installed for real in forked children, do what the reference says.

Hypothesis draws sections over calls that are safe to make under any action:
``getppid``, ``uname`` (into a buffer), an unassigned number with args, and
``write`` of one byte to /dev/null on several fds (with junk in the fd's high
word, which the kernel ignores and a width-32 check must too). The expected
outcome of each call comes from :func:`reference.decide` and a baseline: the same
calls made under an allow-everything filter, for what ALLOW and LOG let through.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from strategies import actions_

from callgate.arch import native_arch
from callgate.bpf.actions import (
    MAX_ERRNO,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    action_of,
    data_of,
)
from callgate.bpf.insn import Insn
from callgate.bpf.opcodes import BPF_K, BPF_RET
from callgate.bpf.seccomp_data import SeccompData
from callgate.kernel.child import SyscallOutcome, probe_syscalls
from callgate.policy.compiler import compile_section
from callgate.policy.model import ArgCheck, Op, Rule, Section
from callgate.policy.reference import decide

ARCH = native_arch()
UNASSIGNED = 1000  # no arch assigns it: ALLOW gives ENOSYS
ALLOW_ALL = [Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW)]
NAMES = ("getppid", "uname", "write")


@pytest.fixture(scope="module")
def devnull_fds():
    """/dev/null open on a few fds the children inherit; closed afterwards."""
    fds = [os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC) for _ in range(3)]
    yield fds
    for fd in fds:
        os.close(fd)


@pytest.fixture(scope="module")
def buffers():
    """Memory for uname's struct and write's byte, at addresses valid in every child."""
    uts, byte = ctypes.create_string_buffer(512), ctypes.create_string_buffer(b"x")
    return ctypes.addressof(uts), ctypes.addressof(byte)


def _checks(fds: list[int]) -> st.SearchStrategy[ArgCheck]:
    near = sorted({v + d for v in (*fds, 1, UNASSIGNED) for d in (-1, 0, 1)})
    value = st.sampled_from(near) | st.sampled_from((0, 2**32 - 1, 2**32, 2**64 - 1))
    return st.builds(
        lambda index, op, v, width: ArgCheck(index, op, v, None, width),
        st.integers(0, 3),
        st.sampled_from([o for o in Op if o is not Op.MASKED_EQ]),
        value,
        st.sampled_from((32, 64)),
    ).filter(lambda c: c.value < 1 << c.width) | st.builds(
        lambda index, mask: ArgCheck(index, Op.MASKED_EQ, mask, mask & fds[0]),
        st.integers(0, 3),
        st.sampled_from((1, 0xF, 0xFFFFFFFF, 0xFFFFFFFF00000000)),
    )


@st.composite
def kernel_sections(draw: st.DrawFn, fds: list[int]) -> Section:
    rules = draw(
        st.lists(
            st.builds(
                lambda names, action, args: Rule(tuple(names), action, tuple(args)),
                st.lists(st.sampled_from(NAMES), min_size=1, max_size=2),
                actions_(),
                st.lists(_checks(fds), max_size=2),
            ),
            max_size=5,
        )
    )
    enosys = draw(st.none() | st.sampled_from((ARCH.number("getppid") - 1, 500)))
    return Section(draw(actions_()), tuple(rules), enosys_above=enosys)


def _calls(fds: list[int], buffers: tuple[int, int]) -> list[tuple[int, list[int]]]:
    uts, byte = buffers
    write = ARCH.number("write")
    calls = [
        (ARCH.number("getppid"), [fds[0], 7]),
        (ARCH.number("uname"), [uts]),
        (UNASSIGNED, [fds[1], 2**32 - 1, 2**64 - 1, 1]),
    ]
    for fd in fds:
        calls.append((write, [fd, byte, 1]))
        calls.append((write, [(0xFFFFFFFF << 32) | fd, byte, 1]))  # the kernel reads an int
    return calls


def _expected(ret: int, allowed: SyscallOutcome) -> SyscallOutcome:
    """What the kernel does for filter result ``ret``; ``allowed`` is the unfiltered outcome."""
    action, data = action_of(ret), data_of(ret)
    if action in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG):
        return allowed
    if action == SECCOMP_RET_ERRNO:
        data = min(data, MAX_ERRNO)
        return SyscallOutcome("errno", data) if data else SyscallOutcome("returned", 0)
    if action == SECCOMP_RET_TRAP:
        return SyscallOutcome("trap", data)
    if action in (SECCOMP_RET_TRACE, SECCOMP_RET_USER_NOTIF):  # no tracer, no listener
        return SyscallOutcome("errno", errno.ENOSYS)
    assert action in (SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD)
    return SyscallOutcome("killed", signal.SIGSYS)


def test_baseline_calls_succeed(devnull_fds, buffers):
    """The probe calls themselves work unfiltered, so the comparison below means something."""
    outcomes = probe_syscalls(ALLOW_ALL, _calls(devnull_fds, buffers))
    assert outcomes[0] == SyscallOutcome("returned", os.getpid())
    assert outcomes[1] == SyscallOutcome("returned", 0)
    assert outcomes[2] == SyscallOutcome("errno", errno.ENOSYS)
    assert set(outcomes[3:]) == {SyscallOutcome("returned", 1)}


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_kernel_agrees_with_reference(devnull_fds, buffers, data):
    section = data.draw(kernel_sections(devnull_fds))
    calls = _calls(devnull_fds, buffers)
    allowed = probe_syscalls(ALLOW_ALL, calls)
    actual = probe_syscalls(compile_section(section, ARCH), calls)
    for (nr, args), unfiltered, outcome in zip(calls, allowed, actual, strict=True):
        ret = decide(section, ARCH, SeccompData.make(nr, ARCH.audit_arch, args))
        assert outcome == _expected(ret, unfiltered), (nr, args, hex(ret))
