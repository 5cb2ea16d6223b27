"""The cffi seccomp binding and the fork oracle, checked against the running kernel.

Every filter is installed in a forked child: a filter can never be removed.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time

import pytest

from callgate.arch import native_arch
from callgate.bpf.actions import (
    PRECEDENCE,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
)
from callgate.bpf.insn import Insn, pack
from callgate.bpf.opcodes import (
    BPF_ABS,
    BPF_JEQ,
    BPF_JMP,
    BPF_K,
    BPF_LD,
    BPF_RET,
    BPF_W,
)
from callgate.bpf.seccomp_data import OFF_IP, OFF_IP_HI, OFF_NR, arg_hi, arg_lo
from callgate.kernel import binding
from callgate.kernel.binding import (
    SECCOMP_ADDFD_FLAG_SEND,
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE,
    SeccompInstallError,
    install_filter,
    raw_syscall,
    set_no_new_privs,
)
from callgate.kernel.child import (
    ChildError,
    SyscallOutcome,
    probe_syscalls,
    run_in_child,
    syscall_instruction_pointer,
)

UNASSIGNED = 1000  # no Linux arch assigns syscall 1000: ALLOW makes it fail with ENOSYS
GETPID = native_arch().number("getpid")


def ld(offset: int) -> Insn:
    return Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset)


def ret(action: int) -> Insn:
    return Insn(BPF_RET | BPF_K, 0, 0, action)


def per_nr(actions: dict[int, int], default: int = SECCOMP_RET_ALLOW) -> list[Insn]:
    """``if nr == N: return actions[N]`` for each N, else ``default``."""
    prog = [ld(OFF_NR)]
    for nr, action in actions.items():
        prog += [Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, nr), ret(action)]
    return [*prog, ret(default)]


def fd_set() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# --- run_in_child ------------------------------------------------------------------------


def test_run_in_child_returns_value_from_a_different_process():
    result = run_in_child(os.getpid)
    assert result.ok and result.exit_code == 0 and result.signal is None
    assert result.value != os.getpid()


def test_run_in_child_reports_exception_exit_and_signal():
    raised = run_in_child(lambda: 1 // 0)
    assert raised.exit_code == 1 and "ZeroDivisionError" in raised.error
    with pytest.raises(ChildError, match="ZeroDivisionError"):
        raised.unwrap()
    exited = run_in_child(lambda: os._exit(3))
    assert (exited.exit_code, exited.signal, exited.error) == (3, None, None)
    killed = run_in_child(lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert (killed.exit_code, killed.signal) == (None, signal.SIGTERM)


def test_run_in_child_kills_on_timeout_and_leaks_no_fds():
    before = fd_set()
    result = run_in_child(lambda: time.sleep(30), timeout=0.5)
    assert result.signal == signal.SIGKILL and "timed out" in result.error
    run_in_child(lambda: b"x" * 300_000)  # larger than a pipe buffer
    assert fd_set() == before


def test_run_in_child_carries_a_large_result():
    assert run_in_child(lambda: b"x" * 300_000).unwrap() == b"x" * 300_000


# --- raw_syscall and NO_NEW_PRIVS ----------------------------------------------------------


def test_raw_syscall_reports_errno_and_return_value():
    assert raw_syscall(GETPID) == (os.getpid(), 0)
    assert raw_syscall(UNASSIGNED, 1, 2, 3) == (-1, errno.ENOSYS)
    assert raw_syscall(native_arch().number("close"), -1) == (-1, errno.EBADF)
    with pytest.raises(ValueError):
        raw_syscall(UNASSIGNED, 1, 2, 3, 4, 5, 6, 7)


def test_no_new_privs_is_set_in_the_child_only():
    def child():
        before = binding.no_new_privs()
        set_no_new_privs()
        return before, binding.no_new_privs()

    assert run_in_child(child).unwrap() == (False, True)
    assert binding.no_new_privs() is False


# --- install_filter errors ---------------------------------------------------------------


def _install_error(program, flags=0, *, nnp=True):
    try:
        if nnp:
            set_no_new_privs()
        install_filter(program, flags)
    except SeccompInstallError as exc:
        return exc.errno, str(exc), exc.tid
    return None


def test_eacces_without_no_new_privs_for_an_unprivileged_process():
    def child():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        refused = _install_error([ret(SECCOMP_RET_ALLOW)], nnp=False)
        accepted = _install_error([ret(SECCOMP_RET_ALLOW)], nnp=True)
        return refused, accepted

    refused, accepted = run_in_child(child).unwrap()
    assert refused[0] == errno.EACCES
    assert "set_no_new_privs" in refused[1] and "CAP_SYS_ADMIN" in refused[1]
    assert accepted is None


@pytest.mark.parametrize(
    "program",
    [
        pytest.param([ld(OFF_NR)], id="no-return-at-end"),
        pytest.param([ld(2), ret(SECCOMP_RET_ALLOW)], id="misaligned-load"),
        pytest.param([ld(64), ret(SECCOMP_RET_ALLOW)], id="load-past-seccomp-data"),
        pytest.param(b"", id="empty"),
        pytest.param([Insn(BPF_JMP | BPF_JEQ | BPF_K, 5, 0, 0), ret(0)], id="jump-out-of-range"),
    ],
)
def test_einval_for_a_program_the_kernel_refuses(program):
    err, message, _ = run_in_child(lambda: _install_error(program)).unwrap()
    assert err == errno.EINVAL
    assert "callgate emu" in message


def test_too_long_program_is_refused_before_the_16_bit_length_wraps():
    program = [ret(SECCOMP_RET_ALLOW)] * 65537  # would wrap to len 1, a valid program
    err, message, _ = run_in_child(lambda: _install_error(program)).unwrap()
    assert err == errno.EINVAL and "4096" in message


def test_ragged_bytes_are_rejected_with_a_format_error():
    from callgate.bpf.insn import BpfFormatError

    with pytest.raises(BpfFormatError, match="8-byte"):
        install_filter(b"\x06\x00\x00\x00\x00\x00")


def test_second_listener_is_ebusy():
    def child():
        set_no_new_privs()
        program = per_nr({UNASSIGNED: SECCOMP_RET_USER_NOTIF})
        first = install_filter(program, SECCOMP_FILTER_FLAG_NEW_LISTENER)
        return first > 2, _install_error(program, SECCOMP_FILTER_FLAG_NEW_LISTENER)

    got_fd, (err, message, _) = run_in_child(child).unwrap()
    assert got_fd and err == errno.EBUSY and "listener" in message


# --- probe_syscalls: every action, observed ------------------------------------------------


def test_probe_tells_every_action_apart():
    program = per_nr(
        {
            1001: SECCOMP_RET_ERRNO | 13,
            1002: SECCOMP_RET_TRAP | 0xBEEF,
            1003: SECCOMP_RET_KILL_PROCESS,
            1004: SECCOMP_RET_KILL_THREAD,
            1005: SECCOMP_RET_LOG,
            1006: SECCOMP_RET_TRACE | 3,
            1007: SECCOMP_RET_USER_NOTIF,
            1008: SECCOMP_RET_ERRNO | 0,
        }
    )
    calls = [(nr, ()) for nr in (1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1000)]
    calls.append((GETPID, ()))
    outcomes = probe_syscalls(program, calls)
    assert outcomes[:9] == [
        SyscallOutcome("errno", 13),
        SyscallOutcome("trap", 0xBEEF),
        SyscallOutcome("killed", signal.SIGSYS),
        SyscallOutcome("killed", signal.SIGSYS),
        SyscallOutcome("errno", errno.ENOSYS),  # LOG: allowed, and 1005 is unassigned
        SyscallOutcome("errno", errno.ENOSYS),  # TRACE without a tracer
        SyscallOutcome("errno", errno.ENOSYS),  # USER_NOTIF without a listener
        SyscallOutcome("returned", 0),  # ERRNO(0) "succeeds" with 0
        SyscallOutcome("errno", errno.ENOSYS),  # ALLOW on an unassigned number
    ]
    kind, pid = outcomes[9]
    assert kind == "returned" and pid not in (os.getpid(), 0)


def test_probe_refork_after_each_kill_keeps_order():
    program = per_nr({1001: SECCOMP_RET_KILL_PROCESS, 1002: SECCOMP_RET_ERRNO | 7})
    calls = [(1001, ()), (1002, ()), (1001, ()), (1001, ()), (1002, ())]
    assert [o.kind for o in probe_syscalls(program, calls)] == [
        "killed",
        "errno",
        "killed",
        "killed",
        "errno",
    ]


def test_probe_with_listener_flag_closes_it_so_user_notif_is_enosys():
    program = per_nr({1001: SECCOMP_RET_USER_NOTIF})
    outcomes = probe_syscalls(program, [(1001, ())], flags=SECCOMP_FILTER_FLAG_NEW_LISTENER)
    assert outcomes == [SyscallOutcome("errno", errno.ENOSYS)]


def test_probe_sees_64_bit_args_as_low_and_high_words():
    # if args[0] == 0x1_00000005: ERRNO(1); elif low word == 5: ERRNO(2); else ALLOW
    program = [
        ld(arg_lo(0)),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 5),
        ld(arg_hi(0)),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 1),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ERRNO | 2),
        ret(SECCOMP_RET_ALLOW),
    ]
    calls = [(UNASSIGNED, (0x1_00000005,)), (UNASSIGNED, (5,)), (UNASSIGNED, (-1,))]
    assert [o.value for o in probe_syscalls(program, calls)] == [1, 2, errno.ENOSYS]


def test_probe_survives_a_filter_that_kills_everything_after_the_call():
    program = per_nr({1001: SECCOMP_RET_ERRNO | 9}, default=SECCOMP_RET_KILL_PROCESS)
    assert probe_syscalls(program, [(1001, ()), (1001, ())]) == [SyscallOutcome("errno", 9)] * 2


def test_probe_reports_an_install_failure():
    with pytest.raises(ChildError, match="EINVAL"):
        probe_syscalls([ld(OFF_NR)], [(UNASSIGNED, ())])


def test_probe_leaks_no_fds():
    before = fd_set()
    probe_syscalls(per_nr({1001: SECCOMP_RET_KILL_PROCESS}), [(1001, ()), (1000, ())])
    assert fd_set() == before


def test_instruction_pointer_matches_what_the_filter_sees():
    ip = syscall_instruction_pointer()
    assert ip > 0x1000
    program = [
        ld(OFF_IP),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, ip & 0xFFFFFFFF),
        ld(OFF_IP_HI),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ip >> 32),
        ret(SECCOMP_RET_ERRNO | 1),
        ret(SECCOMP_RET_ERRNO | 2),
    ]
    assert probe_syscalls(program, [(UNASSIGNED, ())]) == [SyscallOutcome("errno", 1)]


# --- queries -------------------------------------------------------------------------------


def test_action_available_for_every_action_and_not_for_garbage():
    def child():
        known = [binding.action_available(a) for a in PRECEDENCE]
        return known, binding.action_available(0x00010000), binding.action_available(0x7FFE0000)

    known, garbage, other = run_in_child(child).unwrap()
    assert known == [True] * len(PRECEDENCE)
    assert garbage is False and other is False


def test_notif_sizes_match_our_struct_layouts():
    sizes = run_in_child(binding.notif_sizes).unwrap()
    ffi = binding.ffi
    assert sizes.notif == ffi.sizeof("struct seccomp_notif") == 80
    assert sizes.resp == ffi.sizeof("struct seccomp_notif_resp") == 24
    assert sizes.data == ffi.sizeof("struct seccomp_data") == 64


# --- USER_NOTIF round trip -----------------------------------------------------------------


def _notify_child(sock: socket.socket, program, calls):
    def child():
        pid = os.getpid()  # before the filter: getpid is supervised below
        set_no_new_privs()
        listener = install_filter(program, SECCOMP_FILTER_FLAG_NEW_LISTENER)
        socket.send_fds(sock, [b"L"], [listener])
        os.close(listener)
        return [raw_syscall(nr, *args) for nr, args in calls], pid

    return child


def _supervise(sock: socket.socket, answer, seen: list, count: int) -> None:
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    try:
        for _ in range(count):
            notif = binding.notif_recv(fds[0])
            seen.append((notif, binding.notif_id_valid(fds[0], notif.id)))
            answer(fds[0], notif)
            seen.append(binding.notif_id_valid(fds[0], notif.id))
    finally:
        os.close(fds[0])


def test_user_notif_round_trip_error_value_and_continue():
    program = per_nr({UNASSIGNED: SECCOMP_RET_USER_NOTIF, GETPID: SECCOMP_RET_USER_NOTIF})

    def answer(fd, notif):
        if notif.data.nr == GETPID:
            binding.notif_send(fd, notif.id, flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        elif notif.data.args[0] == 1:
            binding.notif_send(fd, notif.id, error=errno.EPERM)
        else:
            binding.notif_send(fd, notif.id, val=42)

    parent_sock, child_sock = socket.socketpair()
    seen: list = []
    with parent_sock, child_sock:
        supervisor = threading.Thread(target=_supervise, args=(parent_sock, answer, seen, 3))
        supervisor.start()
        calls = [(UNASSIGNED, (1, 2, 3)), (UNASSIGNED, (2,)), (GETPID, ())]
        result = run_in_child(_notify_child(child_sock, program, calls))
        supervisor.join(10)
    results, child_pid = result.unwrap()
    assert results == [(-1, errno.EPERM), (42, 0), (child_pid, 0)]
    first, valid = seen[0]
    assert valid is True and seen[1] is False
    assert first.pid == child_pid
    assert first.data.nr == UNASSIGNED and first.data.args == (1, 2, 3, 0, 0, 0)
    assert first.data.arch == native_arch().audit_arch


def test_user_notif_addfd_hands_the_target_a_file(tmp_path):
    secret = tmp_path / "granted"
    secret.write_bytes(b"handed over by the supervisor")
    program = per_nr({UNASSIGNED: SECCOMP_RET_USER_NOTIF})

    def answer(fd, notif):
        src = os.open(secret, os.O_RDONLY)
        try:
            binding.notif_addfd(fd, notif.id, src, flags=SECCOMP_ADDFD_FLAG_SEND)
        finally:
            os.close(src)

    parent_sock, child_sock = socket.socketpair()
    seen: list = []

    def child():
        set_no_new_privs()
        listener = install_filter(program, SECCOMP_FILTER_FLAG_NEW_LISTENER)
        socket.send_fds(child_sock, [b"L"], [listener])
        os.close(listener)
        fd, err = raw_syscall(UNASSIGNED)
        return os.read(fd, 100) if err == 0 else err

    with parent_sock, child_sock:
        supervisor = threading.Thread(target=_supervise, args=(parent_sock, answer, seen, 1))
        supervisor.start()
        result = run_in_child(child)
        supervisor.join(10)
    assert result.unwrap() == b"handed over by the supervisor"


# --- TSYNC ---------------------------------------------------------------------------------


def _seccomp_status() -> list[tuple[str, str]]:
    out = []
    for tid in sorted(os.listdir("/proc/self/task")):
        with open(f"/proc/self/task/{tid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        out.append((fields["Seccomp"].strip(), fields["NoNewPrivs"].strip()))
    return out


def test_tsync_reaches_a_thread_started_before_install():
    def child():
        go, done = threading.Event(), threading.Event()
        seen = []

        def worker():
            go.wait()
            seen.append(raw_syscall(UNASSIGNED))
            done.set()

        thread = threading.Thread(target=worker)
        thread.start()
        before = _seccomp_status()
        set_no_new_privs()
        install_filter(per_nr({UNASSIGNED: SECCOMP_RET_ERRNO | 77}), SECCOMP_FILTER_FLAG_TSYNC)
        after = _seccomp_status()
        go.set()
        done.wait(5)
        return before, after, seen

    before, after, seen = run_in_child(child).unwrap()
    assert len(before) == len(after) == 2
    assert all(seccomp == "0" for seccomp, _ in before)
    assert after == [("2", "1"), ("2", "1")]
    assert seen == [(-1, 77)]


@pytest.mark.parametrize("esrch", [False, True], ids=["tid", "esrch"])
def test_tsync_names_a_thread_it_cannot_synchronise(esrch):
    def child():
        set_no_new_privs()
        installed, release = threading.Event(), threading.Event()
        tid = []

        def diverging():
            tid.append(threading.get_native_id())
            install_filter(per_nr({1001: SECCOMP_RET_ERRNO | 1}))
            installed.set()
            release.wait(5)

        thread = threading.Thread(target=diverging)
        thread.start()
        installed.wait(5)
        flags = SECCOMP_FILTER_FLAG_TSYNC | (SECCOMP_FILTER_FLAG_TSYNC_ESRCH if esrch else 0)
        error = _install_error(per_nr({1002: SECCOMP_RET_ERRNO | 2}), flags)
        release.set()
        thread.join()
        return tid[0], error

    tid, (err, message, reported) = run_in_child(child).unwrap()
    assert err == errno.ESRCH
    if esrch:
        assert reported is None and "TSYNC" in message
    else:
        assert reported == tid and str(tid) in message


def test_packed_bytes_and_instructions_install_alike():
    program = per_nr({1001: SECCOMP_RET_ERRNO | 3})
    assert probe_syscalls(pack(program), [(1001, ())]) == probe_syscalls(program, [(1001, ())])


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (SECCOMP_RET_TRAP | 5, SyscallOutcome("trap", 5)),  # rt_sigreturn traps too
        (SECCOMP_RET_ERRNO | 3, SyscallOutcome("errno", 3)),  # even exit_group fails
        (SECCOMP_RET_KILL_PROCESS, SyscallOutcome("killed", signal.SIGSYS)),
        (SECCOMP_RET_KILL_THREAD, SyscallOutcome("killed", signal.SIGSYS)),
        (SECCOMP_RET_LOG, SyscallOutcome("errno", errno.ENOSYS)),
        (0x12340000, SyscallOutcome("killed", signal.SIGSYS)),  # unknown action = KILL_PROCESS
    ],
)
def test_probe_is_exact_when_the_action_applies_to_every_syscall(action, expected):
    assert probe_syscalls([ret(action)], [(1000, ()), (1001, (1, 2))]) == [expected] * 2


def test_an_interrupted_wait_kills_and_reaps_the_child(monkeypatch):
    import callgate.kernel.child as child_mod

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(child_mod, "_collect", interrupted)
    seen = []
    real_fork = os.fork

    def remember_fork():
        pid = real_fork()
        if pid:
            seen.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", remember_fork)
    before = fd_set()
    with pytest.raises(KeyboardInterrupt):
        run_in_child(lambda: time.sleep(30))
    with pytest.raises(ChildProcessError):
        os.waitpid(seen[0], os.WNOHANG)  # already reaped
    assert fd_set() == before


def test_log_and_spec_allow_flags_are_accepted_and_unknown_flags_refused():
    from callgate.kernel.binding import (
        SECCOMP_FILTER_FLAG_LOG,
        SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    )

    program = per_nr({1001: SECCOMP_RET_ERRNO | 4})
    for flags in (SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW):
        assert probe_syscalls(program, [(1001, ())], flags=flags) == [SyscallOutcome("errno", 4)]
    err, message, _ = run_in_child(lambda: _install_error(program, 1 << 12)).unwrap()
    assert err == errno.EINVAL and "flags" in message


def test_new_listener_with_tsync_needs_tsync_esrch():
    program = per_nr({UNASSIGNED: SECCOMP_RET_USER_NOTIF})

    def child():
        refused = _install_error(
            program, SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC
        )
        set_no_new_privs()
        fd = install_filter(
            program,
            SECCOMP_FILTER_FLAG_NEW_LISTENER
            | SECCOMP_FILTER_FLAG_TSYNC
            | SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
        )
        return refused, fd > 2

    refused, got_listener = run_in_child(child).unwrap()
    assert refused[0] == errno.EINVAL and "TSYNC_ESRCH" in refused[1]
    assert got_listener
