"""The isolated worker: a real subprocess, locked down, holding only what it was handed."""

from __future__ import annotations

import errno
import os
import signal
import struct
from pathlib import Path

import pytest

from callgate.arch import native_arch
from callgate.isolation.worker import Worker, WorkerCrashed, WorkerError, WorkerTimeout
from callgate.policy import load_policy_text

HERE = str(Path(__file__).parent)
# What listing /proc/self/fd and a handed directory needs, on top of the derived host policy.
LISTING = '"openat", "getdents64", "readlink", "newfstatat", "fstat", "lseek", "fcntl", "dup"'


def policy(default: str = "kill_process", names: str = LISTING, landlock: str = ""):
    text = (
        f'[kernel]\ndefault = "{default}"\n[[kernel.rules]]\nnames = [{names}]\naction = "allow"\n'
    )
    return load_policy_text(text + landlock).policy


def worker(tmp_path=None, **kwargs) -> Worker:
    fds = {}
    if tmp_path is not None:
        fds["data"] = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        kwargs.setdefault("policy", policy())
        return Worker("worker_services:build", fds=fds, python_path=[HERE], timeout=30, **kwargs)
    finally:
        for fd in fds.values():
            os.close(fd)


def status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def test_worker_holds_exactly_the_fds_it_was_passed(tmp_path):
    # Listing /proc/self/fd after lockdown: Landlock must let the worker read /proc.
    with worker(tmp_path, policy=policy(landlock='[landlock]\nread = ["/proc"]\n')) as w:
        seen = w.call("fds")
        at_lockdown = w.ready["fds"]
    handed = seen["handed"]["data"]
    assert at_lockdown == seen["held"]  # and nothing new appeared since
    # stdio as the parent chose it, the handed directory, and the socket to the parent
    assert len(seen["held"]) == 5
    assert {0, 1, 2, handed} < set(seen["held"])


def test_worker_is_locked_down_with_nnp_seccomp_and_no_capabilities():
    with worker() as w:
        status = status_of(w.pid)
        w.call("echo")
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0


def test_preopen_is_an_fd_not_a_path(tmp_path):
    (tmp_path / "inside.txt").write_text("x")
    no_open = '"getdents64", "newfstatat", "fstat", "lseek", "fcntl", "dup"'
    with worker(tmp_path, policy=policy("errno(EPERM)", no_open)) as w:
        assert w.call("listdir", "data") == ["inside.txt"]
        with pytest.raises(WorkerError) as err:
            w.call("open", str(tmp_path / "inside.txt"))  # by path: not the worker's to open
    assert err.value.type_name == "PermissionError"
    assert err.value.attrs["errno"] == errno.EPERM


def test_values_round_trip_and_service_errors_are_typed():
    with worker() as w:
        assert w.call("echo", 1, -2, 2**64 - 1, "text", b"\x00\xff", [1, [2]]) == [
            1,
            -2,
            2**64 - 1,
            "text",
            b"\x00\xff",
            [1, [2]],
        ]
        with pytest.raises(WorkerError, match="no method 'nope'") as err:
            w.call("nope")
        assert err.value.type_name == "ValueError"
        assert w.call("echo", "still serving") == ["still serving"]


def test_forwarded_request_reads_and_writes_guest_memory_from_the_parent():
    seen = []

    def gate(message, memory):
        seen.append((message["name"], message["args"], memory.read(0, 12)))
        memory.write(0, b"GUEST")
        with pytest.raises(Exception, match="outside linear memory"):
            memory.read(memory.size - 1, 2)
        return 42

    with worker(handlers={"gate": gate}) as w:
        answer, memory = w.call("forward", "kv_get", 7, 8)
    assert answer == 42 and memory.startswith(b"GUEST memory: hello")
    assert seen == [("kv_get", [7, 8], b"guest memory")]


def test_a_failing_handler_is_reported_to_the_worker_not_raised_here():
    def gate(message, memory):
        raise KeyError("no such key")

    with worker(handlers={"gate": gate}) as w:
        with pytest.raises(WorkerError, match="no such key") as err:
            w.call("forward", "kv_get")
        assert err.value.type_name == "ParentError"
        assert w.call("echo", 1) == [1]


def test_a_forbidden_syscall_kills_the_worker_not_the_parent_and_restart_works():
    fork = native_arch().number("fork") if "fork" in native_arch().numbers else None
    nr = fork if fork is not None else native_arch().number("clone")
    before = set(os.listdir("/proc/self/fd"))
    with worker() as w:
        first = w.pid
        with pytest.raises(WorkerCrashed) as crash:
            w.call("syscall", nr, 0x11)  # SIGCHLD: a fork
        assert crash.value.signal == signal.SIGSYS and "kernel filter" in str(crash.value)
        assert not w.alive
        with pytest.raises(WorkerCrashed, match="not running"):
            w.call("echo")
        w.restart()
        assert w.pid != first and w.call("echo", "back") == ["back"]
    assert set(os.listdir("/proc/self/fd")) == before


def test_a_crashing_worker_is_a_typed_error():
    with worker() as w, pytest.raises(WorkerCrashed) as crash:
        w.call("segfault")
    assert crash.value.signal == signal.SIGSEGV


def test_a_hung_worker_times_out_and_is_killed():
    w = worker()
    w._timeout = 0.5
    with w:
        with pytest.raises(WorkerTimeout):
            w.call("sleep", 30)
        assert not w.alive
        w.restart()
        assert w.call("echo") == []


@pytest.mark.parametrize(
    "garbage",
    [
        struct.pack("<II", 1 << 31, 0),  # a frame larger than the limit
        struct.pack("<II", 5, 0) + b"nope!",  # not JSON
        struct.pack("<II", 17, 0) + b'{"op":"surprise"}',  # a request nobody handles
    ],
    ids=["oversized", "not-json", "unknown-op"],
)
def test_a_hostile_worker_cannot_confuse_the_parent(garbage):
    with worker() as w:
        with pytest.raises(WorkerCrashed, match="killed"):
            w.call("garbage", garbage)
        assert not w.alive


def test_a_service_that_fails_to_build_is_reported_at_start():
    w = worker(config={"fail": True})
    with pytest.raises(WorkerError, match="service refused to build"):
        w.start()
    w.close()


def test_calls_from_several_threads_are_serialised():
    import threading

    results: list = []
    with worker() as w:
        threads = [
            threading.Thread(target=lambda i=i: results.append(w.call("echo", i, b"x" * 5000)))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(r[0] for r in results) == list(range(8))
    assert all(r[1] == b"x" * 5000 for r in results)


def test_user_notif_rules_of_the_worker_are_answered_by_the_parent():
    from callgate.kernel.supervisor import Verdict

    uname = native_arch().number("uname")
    getppid = native_arch().number("getppid")
    text = (
        '[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["uname", "getppid"]\naction = "user_notif"\n'
    )
    seen = []

    def decide(notification, memory):
        seen.append(notification.data.nr)
        if notification.data.nr == uname:
            return Verdict.deny(errno.EACCES)
        return Verdict.returning(4242)

    with worker(policy=load_policy_text(text).policy, supervise=decide) as w:
        assert w.call("syscall", uname, 0) == [-1, errno.EACCES]
        assert w.call("syscall", getppid) == [4242, 0]
    assert seen == [uname, getppid]


def test_without_a_supervisor_user_notif_rules_fail_with_enosys():
    uname = native_arch().number("uname")
    text = (
        '[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["uname"]\naction = "user_notif"\n'
    )
    with worker(policy=load_policy_text(text).policy) as w:
        assert w.call("syscall", uname, 0) == [-1, errno.ENOSYS]


def test_a_memory_read_answered_with_the_wrong_length_is_refused():
    def gate(message, memory):
        return memory.read(0, 32)

    with worker(handlers={"gate": gate}) as w:
        with pytest.raises(WorkerError, match="instead of 32 bytes"):
            w.call("forward_lying")
        assert w.call("echo", 1) == [1]


def test_a_worker_that_keeps_asking_is_stopped_by_the_call_timeout():
    asked = []

    def gate(message, memory):
        asked.append(message["name"])
        return 0

    w = worker(handlers={"gate": gate})
    w._timeout = 0.5
    with w:
        with pytest.raises(WorkerTimeout):
            w.call("chatter")
        assert not w.alive and len(asked) > 1


def test_an_interrupted_call_retires_the_worker():
    def gate(message, memory):
        raise KeyboardInterrupt

    with worker(handlers={"gate": gate}) as w:
        with pytest.raises(KeyboardInterrupt):
            w.call("forward", "g")
        assert not w.alive
        w.restart()
        assert w.call("echo", 2) == [2]
