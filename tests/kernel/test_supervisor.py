"""The USER_NOTIF supervisor answering a real filtered child from this process."""

from __future__ import annotations

import errno
import os
import socket
import threading

from callgate.arch import native_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF
from callgate.bpf.insn import Insn
from callgate.bpf.opcodes import BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W
from callgate.bpf.seccomp_data import OFF_NR
from callgate.kernel.binding import (
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    install_filter,
    raw_syscall,
    set_no_new_privs,
)
from callgate.kernel.child import run_in_child
from callgate.kernel.supervisor import Supervisor, Verdict

ARCH = native_arch()
OPENAT = ARCH.number("openat")
GETPPID = ARCH.number("getppid")
UNASSIGNED = 1000
AT_FDCWD = -100


def notify_on(*numbers: int) -> list[Insn]:
    prog = [Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, OFF_NR)]
    for nr in numbers:
        prog += [
            Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, nr),
            Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_USER_NOTIF),
        ]
    return [*prog, Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW)]


def supervised(decide, body, *numbers):
    """Run ``body`` in a child whose ``numbers`` syscalls this process answers."""
    parent_sock, child_sock = socket.socketpair()

    def child():
        parent_sock.close()
        set_no_new_privs()
        listener = install_filter(notify_on(*numbers), SECCOMP_FILTER_FLAG_NEW_LISTENER)
        socket.send_fds(child_sock, [b"L"], [listener])
        os.close(listener)
        child_sock.recv(1)  # the supervisor is running
        return body()

    with parent_sock, child_sock:
        # The child needs the listener in our hands before its first notified call.
        pid_result: list = []

        def run():
            pid_result.append(run_in_child(child))

        runner = threading.Thread(target=run)
        runner.start()
        _, fds, _, _ = socket.recv_fds(parent_sock, 1, 1)
        supervisor = Supervisor(fds[0], decide).start()
        parent_sock.send(b"go")
        runner.join(15)
        supervisor.stop()
    return pid_result[0], supervisor


def test_verdicts_deny_return_and_continue():
    def decide(notif, memory):
        if notif.data.nr == GETPPID:
            return Verdict.allow()
        return Verdict.deny(errno.EACCES) if notif.data.args[0] == 1 else Verdict.returning(7)

    def body():
        return [raw_syscall(UNASSIGNED, 1), raw_syscall(UNASSIGNED, 2), raw_syscall(GETPPID)]

    result, supervisor = supervised(decide, body, UNASSIGNED, GETPPID)
    assert result.unwrap() == [(-1, errno.EACCES), (7, 0), (os.getpid(), 0)]
    assert supervisor.answered == 3 and supervisor.errors == []


def test_path_read_from_target_memory_and_fd_injected(tmp_path):
    granted = tmp_path / "granted.txt"
    granted.write_text("the supervisor's copy")
    seen = []

    def decide(notif, memory):
        path = memory.read_cstring(notif.data.args[1])
        seen.append(path)
        if path != b"/etc/hostname":
            return Verdict.deny(errno.ENOENT)
        # Act on our own copy of the path, never CONTINUE on a pointer argument.
        return Verdict.inject(os.open(granted, os.O_RDONLY))

    def body():
        fd = os.open("/etc/hostname", os.O_RDONLY)
        try:
            text = os.read(fd, 100)
        finally:
            os.close(fd)
        try:
            os.open("/etc/shadow", os.O_RDONLY)
            other = None
        except OSError as exc:
            other = exc.errno
        return text, other

    result, supervisor = supervised(decide, body, OPENAT)
    assert result.unwrap() == (b"the supervisor's copy", errno.ENOENT)
    assert seen == [b"/etc/hostname", b"/etc/shadow"]
    assert supervisor.errors == []


def test_a_failing_decider_fails_closed():
    def decide(notif, memory):
        raise RuntimeError("bug in the decider")

    result, supervisor = supervised(decide, lambda: raw_syscall(UNASSIGNED), UNASSIGNED)
    assert result.unwrap() == (-1, errno.EPERM)
    assert [str(e) for e in supervisor.errors] == ["bug in the decider"]


def test_supervisor_ends_when_the_target_is_gone_and_leaks_no_fds():
    before = set(os.listdir("/proc/self/fd"))
    result, supervisor = supervised(lambda n, m: Verdict.allow(), lambda: 1, UNASSIGNED)
    assert result.unwrap() == 1
    assert not supervisor.running
    assert set(os.listdir("/proc/self/fd")) == before


def test_unreadable_target_address_is_reported_to_the_decider():
    outcomes = []

    def decide(notif, memory):
        try:
            memory.read(8, 16)  # page zero is never mapped
        except OSError as exc:
            outcomes.append(exc.errno)
        return Verdict.deny(errno.EFAULT)

    result, _ = supervised(decide, lambda: raw_syscall(UNASSIGNED), UNASSIGNED)
    assert result.unwrap() == (-1, errno.EFAULT)
    assert outcomes == [errno.EIO]


def test_stop_while_idle_then_parked_calls_fail_with_enosys():
    parent_sock, child_sock = socket.socketpair()

    def child():
        set_no_new_privs()
        listener = install_filter(notify_on(UNASSIGNED), SECCOMP_FILTER_FLAG_NEW_LISTENER)
        socket.send_fds(child_sock, [b"L"], [listener])
        os.close(listener)
        child_sock.recv(1)  # the supervisor has been stopped
        return raw_syscall(UNASSIGNED)

    with parent_sock, child_sock:
        runner_result: list = []
        runner = threading.Thread(target=lambda: runner_result.append(run_in_child(child)))
        runner.start()
        _, fds, _, _ = socket.recv_fds(parent_sock, 1, 1)
        supervisor = Supervisor(fds[0], lambda n, m: Verdict.allow()).start()
        supervisor.stop()
        assert not supervisor.running
        parent_sock.send(b"go")
        runner.join(15)
    assert runner_result[0].unwrap() == (-1, errno.ENOSYS)
