"""Issue 12, items 5, 6 and 10a: what one gate call may cost the host, and how long it may block.

Every test runs a real :class:`~callgate.runtime.Plugin` on an inline WAT module
(or a committed guest), so the gates are reached the way a guest reaches them.

* Amplification (item 5): iovec arrays are capped at ``IOV_MAX`` (1024) and
  ``poll_oneoff`` at ``MAX_SUBSCRIPTIONS`` (4096), both EINVAL past the cap,
  before anything proportional to the count is built; a read allocates no more
  host memory than it moves (one bounded chunk), a write to a stream no more
  than one piece past what the stream took.
* Deadlines (item 6): every gate that can block - reads, writes to pipes and
  sockets, ``sock_recv``, ``sock_send``, ``sock_accept`` - ends at
  ``Limits.timeout`` with ``DeadlineExceeded``, and ``Plugin.close()`` is not
  held up behind it. A gate that ignores the deadline would block for ever, so
  these tests run the call in a thread and, if it is still blocked long after
  the deadline, unblock the host end themselves and fail.
* Disk (item 10a): ``fd_allocate`` and a growing ``fd_filestat_set_size`` are
  charged to ``Limits.output`` before the file changes.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from native_wasi import WASM

from callgate.arch import wasi_errno as E
from callgate.gates.errors import DeadlineExceeded, OutputLimitExceeded
from callgate.gates.spec import GuestExit
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider, types as T
from callgate.runtime import Limits, Plugin

TIMEOUT = 0.5
# How long past the deadline a blocked call may take before the test calls it a hang:
# 20x the timeout, for a loaded 2-core machine. Never an assertion about speed.
HANG = 20 * TIMEOUT
PAGE = 65536
MiB = 1 << 20
IOV_MAX = 1024
MAX_SUBSCRIPTIONS = 4096
# Host memory a gate call may allocate while moving (almost) nothing: a few chunks.
SMALL = 1 * MiB

GATES = wasmtime.wat2wasm(r"""
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread"
    (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite"
    (func $fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv"
    (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send"
    (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept"
    (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_allocate"
    (func $fd_allocate (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size"
    (func $fd_filestat_set_size (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 5)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "fd_read") (param i32 i32 i32 i32) (result i32)
    (call $fd_read (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "fd_write") (param i32 i32 i32 i32) (result i32)
    (call $fd_write (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "fd_pread") (param i32 i32 i32 i32) (result i32)
    (call $fd_pread (local.get 0) (local.get 1) (local.get 2) (i64.const 0) (local.get 3)))
  (func (export "fd_pwrite") (param i32 i32 i32 i32) (result i32)
    (call $fd_pwrite (local.get 0) (local.get 1) (local.get 2) (i64.const 0) (local.get 3)))
  ;; sock_recv(fd, iovs, n, riflags, ret): roflags go to ret + 4
  (func (export "sock_recv") (param i32 i32 i32 i32 i32) (result i32)
    (call $sock_recv (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)
                     (i32.add (local.get 4) (i32.const 4))))
  (func (export "sock_send") (param i32 i32 i32 i32) (result i32)
    (call $sock_send (local.get 0) (local.get 1) (local.get 2) (i32.const 0) (local.get 3)))
  (func (export "sock_accept") (param i32 i32) (result i32)
    (call $sock_accept (local.get 0) (i32.const 0) (local.get 1)))
  (func (export "poll_oneoff") (param i32 i32 i32 i32) (result i32)
    (call $poll_oneoff (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "fd_allocate") (param i32 i64 i64) (result i32)
    (call $fd_allocate (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fd_filestat_set_size") (param i32 i64) (result i32)
    (call $fd_filestat_set_size (local.get 0) (local.get 1)))
  ;; open(path, len, oflags, ret): beneath the first preopen (fd 3), every right
  (func (export "open") (param i32 i32 i32 i32) (result i32)
    (call $path_open (i32.const 3) (i32.const 0) (local.get 0) (local.get 1) (local.get 2)
                     (i64.const -1) (i64.const -1) (i32.const 0) (local.get 3)))
  ;; Write the same ciovec array until a call fails (what a libc write loop does with
  ;; short writes); return that errno.
  (func (export "write_all") (param i32 i32 i32 i32) (result i32) (local $r i32)
    (loop $again
      (local.set $r (call $fd_write (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
      (br_if $again (i32.eqz (local.get $r))))
    (local.get $r))
  ;; sock_send(fd, iovs_send, 1) then sock_recv(fd, iovs_recv, 1): the peer sees the call
  ;; has started before the gate that blocks
  (func (export "ping_recv") (param i32 i32 i32 i32) (result i32) (local $r i32)
    (local.set $r (call $sock_send (local.get 0) (local.get 1) (i32.const 1) (i32.const 0)
                                   (local.get 3)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $sock_recv (local.get 0) (local.get 2) (i32.const 1) (i32.const 0) (local.get 3)
                     (i32.add (local.get 3) (i32.const 4))))
  (func (export "send_all") (param i32 i32 i32 i32) (result i32) (local $r i32)
    (loop $again
      (local.set $r (call $sock_send (local.get 0) (local.get 1) (local.get 2) (i32.const 0)
                                     (local.get 3)))
      (br_if $again (i32.eqz (local.get $r))))
    (local.get $r)))
""")

# Fixed guest addresses the tests lay their arguments out at.
RET = 16          # u32 result (and roflags at RET + 4)
PATH = 32         # a file name for "open"
IOVS = 1024       # iovec / subscription arrays
DATA = 4 * PAGE   # buffers (the module starts with 5 pages)


def _plugin(config: WasiConfig, **limits: Any) -> Plugin:
    return Plugin(GATES, providers=[WasiProvider(config)], limits=Limits(**limits))


def _config(**kw: Any) -> WasiConfig:
    kw.setdefault("stdout", bytearray())
    kw.setdefault("stderr", bytearray())
    return WasiConfig(**kw)


def _grow_to(plugin: Plugin, nbytes: int) -> None:
    mem = plugin.memory()
    assert mem is not None
    pages = -(-nbytes // PAGE) - mem.size // PAGE
    if pages > 0:
        assert plugin.call_int("grow", pages) != -1


def _put(plugin: Plugin, ptr: int, data: bytes) -> None:
    mem = plugin.memory()
    assert mem is not None
    mem.write(ptr, data)


def _u32(plugin: Plugin, ptr: int) -> int:
    mem = plugin.memory()
    assert mem is not None
    return mem.u32(ptr)


def _iovecs(plugin: Plugin, vecs: list[tuple[int, int]]) -> None:
    _put(plugin, IOVS, b"".join(struct.pack("<II", buf, n) for buf, n in vecs))


def _open(plugin: Plugin, name: str, oflags: int = 0) -> int:
    _put(plugin, PATH, name.encode())
    assert plugin.call_int("open", PATH, len(name), oflags, RET) == 0
    return _u32(plugin, RET)


@contextmanager
def _peak_memory() -> Iterator[list[int]]:
    """The peak of Python allocations inside the block (tracemalloc), in result[0]."""
    result = [0]
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result[0] = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()


def _bounded(call: Callable[[], object], unblock: Callable[[], None]) -> BaseException | None:
    """Run ``call`` in a thread; return what it raised (None if it returned).

    A call still running ``HANG`` seconds in has ignored its deadline: ``unblock``
    frees whatever host end it waits on (so the thread can finish) and the test fails.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        unblock()
        thread.join(60)
        pytest.fail(f"the gate was still blocked {HANG} s into a call with a {TIMEOUT} s deadline")
    return outcome[0]


# -- item 5: amplification ---------------------------------------------------------------

IOV_GATES = ["fd_read", "fd_write", "fd_pread", "fd_pwrite", "sock_recv", "sock_send"]


@pytest.mark.parametrize("gate", IOV_GATES)
def test_iovec_arrays_are_capped_at_iov_max(gate: str, tmp_path: Path) -> None:
    """1024 iovecs are fine, 1025 answer EINVAL (Linux's UIO_MAXIOV), on every gate taking
    an iovec array; zero-length iovecs (all zeros in memory) cost nothing to move."""
    ours, theirs = socket.socketpair()
    ours.sendall(b"x")  # so that a read of zero bytes has no reason to wait either
    config = _config(preopens=[Preopen(tmp_path, "/d")], sockets=[theirs])
    with _plugin(config) as plugin:
        fd = {"sock_recv": 4, "sock_send": 4}.get(gate) or _open(plugin, "f", T.OFLAGS_CREAT)
        args = (fd, IOVS, IOV_MAX + 1, *((0,) if gate == "sock_recv" else ()), RET)
        assert plugin.call_int(gate, *args) == E.EINVAL
        args = (fd, IOVS, IOV_MAX, *((0,) if gate == "sock_recv" else ()), RET)
        assert plugin.call_int(gate, *args) == 0
        assert _u32(plugin, RET) == 0
    for s in (ours, theirs):
        s.close()


def test_a_write_of_33m_empty_iovecs_is_refused_without_building_them() -> None:
    """The reported amplification: guest memory at the 256 MiB default, filled with
    zero-length iovecs, handed to one fd_write. It used to build a 2.6 GB list and run
    39 s past a 1 s deadline; it answers EINVAL before reading the array."""
    config = _config()
    with _plugin(config, timeout=1.0) as plugin:
        _grow_to(plugin, 256 * MiB)
        count = (256 * MiB - IOVS) // 8
        with _peak_memory() as peak:
            assert plugin.call_int("fd_write", 1, IOVS, count, RET) == E.EINVAL
        assert peak[0] < SMALL
        assert config.stdout == b""


def test_poll_oneoff_subscriptions_are_capped() -> None:
    """4096 subscriptions are answered; 4097, or millions, are EINVAL before the array is
    read (no event list proportional to a guest-chosen count); zero stays EINVAL."""
    sub = T.SUBSCRIPTION.pack(7, T.EVENTTYPE_CLOCK, T.SUB_CLOCK.pack(T.CLOCK_MONOTONIC, 0, 0, 0))
    events = IOVS + MAX_SUBSCRIPTIONS * T.SUBSCRIPTION.size
    with _plugin(_config(), timeout=1.0) as plugin:
        _grow_to(plugin, events + MAX_SUBSCRIPTIONS * T.EVENT.size)
        _put(plugin, IOVS, sub * MAX_SUBSCRIPTIONS)
        assert plugin.call_int("poll_oneoff", IOVS, events, MAX_SUBSCRIPTIONS, RET) == 0
        assert _u32(plugin, RET) == MAX_SUBSCRIPTIONS
        assert plugin.call_int("poll_oneoff", IOVS, events, MAX_SUBSCRIPTIONS + 1,
                               RET) == E.EINVAL
        assert plugin.call_int("poll_oneoff", IOVS, events, 0, RET) == E.EINVAL
        _grow_to(plugin, 256 * MiB)
        huge = (256 * MiB - IOVS) // T.SUBSCRIPTION.size
        with _peak_memory() as peak:
            assert plugin.call_int("poll_oneoff", IOVS, IOVS, huge, RET) == E.EINVAL
        assert peak[0] < SMALL


def _file_with(tmp_path: Path, data: bytes) -> WasiConfig:
    (tmp_path / "f").write_bytes(data)
    return _config(preopens=[Preopen(tmp_path, "/d")])


@pytest.mark.parametrize("gate", ["fd_read", "fd_pread"])
def test_a_read_allocates_what_it_moves_not_what_the_guest_offers(gate: str,
                                                                  tmp_path: Path) -> None:
    """A 16 MiB iovec over a 10-byte file: the read moves 10 bytes and allocates no
    16 MiB buffer on the host."""
    with _plugin(_file_with(tmp_path, b"ten bytes!")) as plugin:
        _grow_to(plugin, DATA + 16 * MiB)
        fd = _open(plugin, "f")
        _iovecs(plugin, [(DATA, 16 * MiB)])
        with _peak_memory() as peak:
            assert plugin.call_int(gate, fd, IOVS, 1, RET) == 0
        assert _u32(plugin, RET) == 10
        mem = plugin.memory()
        assert mem is not None and mem.read(DATA, 11) == b"ten bytes!\0"
        assert peak[0] < SMALL


def test_a_file_read_fills_one_buffer_longer_than_a_chunk(tmp_path: Path) -> None:
    """Reading in bounded chunks still fills a buffer longer than one chunk in one call;
    as in wasmtime, a call moves only the first non-empty iovec and leaves the rest."""
    data = os.urandom(300_000)
    with _plugin(_file_with(tmp_path, data)) as plugin:
        _grow_to(plugin, DATA + 2 * MiB)
        fd = _open(plugin, "f")
        vecs = [(DATA, 0), (DATA + 16, 270_000), (DATA + 300_000, 3)]
        _iovecs(plugin, vecs)
        mem = plugin.memory()
        assert mem is not None
        mem.write(DATA + 300_000, b"abc")
        assert plugin.call_int("fd_read", fd, IOVS, len(vecs), RET) == 0
        assert _u32(plugin, RET) == 270_000
        assert mem.read(DATA + 16, 270_000) == data[:270_000]
        assert mem.read(DATA + 300_000, 3) == b"abc"
        assert plugin.call_int("fd_read", fd, IOVS, len(vecs), RET) == 0
        assert _u32(plugin, RET) == 30_000 and mem.read(DATA + 16, 30_000) == data[270_000:]


@pytest.mark.parametrize("gate", ["fd_read", "sock_recv"])
def test_a_socket_read_allocates_what_it_moves(gate: str) -> None:
    ours, theirs = socket.socketpair()
    ours.sendall(b"ten bytes!")
    with _plugin(_config(sockets=[theirs])) as plugin:
        _grow_to(plugin, DATA + 16 * MiB)
        _iovecs(plugin, [(DATA, 16 * MiB)])
        args = (3, IOVS, 1, *((0,) if gate == "sock_recv" else ()), RET)
        with _peak_memory() as peak:
            assert plugin.call_int(gate, *args) == 0
        assert _u32(plugin, RET) == 10
        mem = plugin.memory()
        assert mem is not None and mem.read(DATA, 10) == b"ten bytes!"
        assert peak[0] < SMALL
    for s in (ours, theirs):
        s.close()


# -- item 6: blocking gates end at the deadline ------------------------------------------

class _Pipe:
    """A pipe whose write end is fd 1 (inherited stdout) and whose read end nobody reads."""

    def __init__(self) -> None:
        self.read_end, write_end = os.pipe()
        self.saved = os.dup(1)
        os.dup2(write_end, 1)
        os.close(write_end)

    def drain(self) -> int:
        os.set_blocking(self.read_end, False)
        total = 0
        try:
            while chunk := os.read(self.read_end, 1 << 16):
                total += len(chunk)
        except BlockingIOError:
            pass
        return total

    def hang_up(self) -> None:
        """Close the read end: a writer blocked on the pipe gets EPIPE and returns."""
        if self.read_end >= 0:
            os.close(self.read_end)
            self.read_end = -1

    def restore(self) -> None:
        os.dup2(self.saved, 1)
        os.close(self.saved)
        self.hang_up()


@contextmanager
def _stdout_pipe() -> Iterator[_Pipe]:
    pipe = _Pipe()
    try:
        yield pipe
    finally:
        pipe.restore()


def test_a_large_fd_write_to_a_pipe_nobody_reads_ends_at_the_deadline() -> None:
    """``guest | sleep 12``: one 16 MiB fd_write to a full pipe. The gate writes what fits
    (a short write), the guest loops as libc does, and the next write waits no longer
    than the deadline. Only a piece is ever gathered from guest memory, not 16 MiB."""
    with _stdout_pipe() as pipe, _plugin(_config(stdout="inherit"), timeout=TIMEOUT) as plugin:
        _grow_to(plugin, DATA + 16 * MiB)
        _iovecs(plugin, [(DATA, 16 * MiB)])
        with _peak_memory() as peak:
            error = _bounded(lambda: plugin.call_int("write_all", 1, IOVS, 1, RET),
                             unblock=pipe.hang_up)
        assert isinstance(error, DeadlineExceeded)
        assert peak[0] < SMALL
        assert 0 < pipe.drain() < 16 * MiB


@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_short_writes_to_a_stream_lose_and_repeat_nothing(kind: str) -> None:
    """A stream write returns what fit; a guest that retries from there (as libc does)
    gets every byte across, once and in order, to a reader slower than the writer."""
    data = os.urandom(2 * MiB)
    received = bytearray()
    with _stdout_pipe() as pipe:
        ours, theirs = socket.socketpair()
        read_end = pipe.read_end if kind == "pipe" else ours.fileno()
        fd, gate = (1, "fd_write") if kind == "pipe" else (3, "sock_send")

        def reader() -> None:
            while len(received) < len(data) and (chunk := os.read(read_end, 4096)):
                received.extend(chunk)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        with _plugin(_config(stdout="inherit", sockets=[theirs])) as plugin:
            _grow_to(plugin, DATA + len(data))
            _put(plugin, DATA, data)
            done = 0
            while done < len(data):
                _iovecs(plugin, [(DATA + done, len(data) - done)])
                assert plugin.call_int(gate, fd, IOVS, 1, RET) == 0
                assert _u32(plugin, RET) > 0
                done += _u32(plugin, RET)
        thread.join()
        for s in (ours, theirs):
            s.close()
    assert done == len(data) and received == data


def test_cat_into_a_pipe_nobody_reads_ends_at_the_deadline(tmp_path: Path) -> None:
    """The real guest: ``cat`` copying 4 MiB of stdin into a pipe nobody reads."""
    with _stdout_pipe() as pipe:
        config = WasiConfig(args=("cat",), stdin=bytes(4 * MiB), stdout="inherit",
                            stderr=bytearray())
        with Plugin(WASM / "cat.wasm", providers=[WasiProvider(config)],
                    limits=Limits(timeout=TIMEOUT)) as plugin:
            error = _bounded(lambda: plugin.call_int("_start"), unblock=pipe.hang_up)
        assert isinstance(error, DeadlineExceeded)
        assert 0 < pipe.drain() < 4 * MiB


def test_sock_recv_from_a_silent_peer_ends_at_the_deadline() -> None:
    ours, theirs = socket.socketpair()
    with _plugin(_config(sockets=[theirs]), timeout=TIMEOUT) as plugin:
        _iovecs(plugin, [(DATA, 100)])
        error = _bounded(lambda: plugin.call_int("sock_recv", 3, IOVS, 1, 0, RET),
                         unblock=ours.close)
        assert isinstance(error, DeadlineExceeded)
        # The peer speaks up: the same plugin's next call reads normally.
        ours.sendall(b"late")
        assert plugin.call_int("sock_recv", 3, IOVS, 1, 0, RET) == 0
        assert _u32(plugin, RET) == 4
    for s in (ours, theirs):
        s.close()


def test_sock_recv_waitall_on_partial_data_ends_at_the_deadline() -> None:
    """WAITALL waits for the whole buffer: with 4 of 100 bytes sent it must still stop
    at the deadline."""
    ours, theirs = socket.socketpair()
    with _plugin(_config(sockets=[theirs]), timeout=TIMEOUT) as plugin:
        _iovecs(plugin, [(DATA, 60), (DATA + 100, 40)])
        ours.sendall(b"part")
        waitall = T.RIFLAGS_RECV_WAITALL
        error = _bounded(lambda: plugin.call_int("sock_recv", 3, IOVS, 2, waitall, RET),
                         unblock=ours.close)
        assert isinstance(error, DeadlineExceeded)
    for s in (ours, theirs):
        s.close()


def test_sock_recv_waitall_still_gathers_the_whole_buffer() -> None:
    """Without a deadline to stop it, WAITALL returns only once all 100 bytes have come,
    across both iovecs, however the peer splits them."""
    ours, theirs = socket.socketpair()
    data = os.urandom(100)
    with _plugin(_config(sockets=[theirs])) as plugin:
        _iovecs(plugin, [(DATA, 60), (DATA + 100, 40)])
        ours.sendall(data[:30])
        timer = threading.Timer(0.05, ours.sendall, (data[30:],))
        timer.start()
        waitall = T.RIFLAGS_RECV_WAITALL
        assert plugin.call_int("sock_recv", 3, IOVS, 2, waitall, RET) == 0
        timer.join()
        assert _u32(plugin, RET) == 100
        mem = plugin.memory()
        assert mem is not None and mem.read(DATA, 60) + mem.read(DATA + 100, 40) == data
    for s in (ours, theirs):
        s.close()


def test_sock_accept_without_a_client_ends_at_the_deadline() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with _plugin(_config(sockets=[listener]), timeout=TIMEOUT) as plugin:
        error = _bounded(lambda: plugin.call_int("sock_accept", 3, RET),
                         unblock=lambda: socket.create_connection(listener.getsockname()))
        assert isinstance(error, DeadlineExceeded)
        client = socket.create_connection(listener.getsockname())
        assert plugin.call_int("sock_accept", 3, RET) == 0
        assert _u32(plugin, RET) == 4
        client.close()
    listener.close()


def test_sock_send_to_a_peer_that_never_reads_ends_at_the_deadline() -> None:
    """A 16 MiB send to a socket whose peer reads nothing: short sends while the buffer
    takes data, then a wait that ends at the deadline."""
    ours, theirs = socket.socketpair()
    with _plugin(_config(sockets=[theirs]), timeout=TIMEOUT) as plugin:
        _grow_to(plugin, DATA + 16 * MiB)
        _iovecs(plugin, [(DATA, 16 * MiB)])
        with _peak_memory() as peak:
            error = _bounded(lambda: plugin.call_int("send_all", 3, IOVS, 1, RET),
                             unblock=ours.close)
        assert isinstance(error, DeadlineExceeded)
        assert peak[0] < SMALL
    for s in (ours, theirs):
        s.close()


def test_close_is_not_held_up_by_a_gate_blocked_in_another_thread() -> None:
    """close() takes the plugin's lock, which the blocked call holds: it gets it when the
    call ends at its deadline, not whenever the peer speaks. The guest pings first, so
    close() is called only once the call is under way."""
    ours, theirs = socket.socketpair()
    plugin = _plugin(_config(sockets=[theirs]), timeout=TIMEOUT)
    _put(plugin, DATA, b"!")
    _put(plugin, IOVS, struct.pack("<IIII", DATA, 1, DATA + 16, 100))
    outcome: list[BaseException | None] = []

    def blocked_call() -> None:
        try:
            plugin.call_int("ping_recv", 3, IOVS, IOVS + 8, RET)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=blocked_call, daemon=True)
    caller.start()
    assert ours.recv(1) == b"!"  # the call holds the plugin's lock from here on
    assert _bounded(plugin.close, unblock=ours.close) is None
    caller.join(HANG)
    assert plugin.closed
    assert outcome and isinstance(outcome[0], DeadlineExceeded)
    for s in (ours, theirs):
        s.close()


# -- item 10a: disk a gate reserves is output -----------------------------------------------

def test_fd_allocate_is_charged_to_the_output_limit(tmp_path: Path) -> None:
    """The committed ``fallback`` guest asks posix_fallocate for 1 MiB under a 4 KiB output
    cap: the call ends with OutputLimitExceeded and no disk is reserved."""
    config = WasiConfig(args=("fallback", "/d/big", str(MiB)),
                        preopens=[Preopen(tmp_path, "/d")], stdout=bytearray(),
                        stderr=bytearray())
    with Plugin(WASM / "fallback.wasm", providers=[WasiProvider(config)],
                limits=Limits(output=4096)) as plugin, pytest.raises(OutputLimitExceeded):
        plugin.call_int("_start")
    big = tmp_path / "big"
    assert big.stat().st_size == 0 and big.stat().st_blocks == 0
    assert b"fallocate ok" not in config.stdout


def test_fd_allocate_within_the_output_limit_still_works(tmp_path: Path) -> None:
    config = WasiConfig(args=("fallback", "/d/small", "3000"),
                        preopens=[Preopen(tmp_path, "/d")], stdout=bytearray(),
                        stderr=bytearray())
    with Plugin(WASM / "fallback.wasm", providers=[WasiProvider(config)],
                limits=Limits(output=4096)) as plugin:
        try:
            plugin.call_int("_start")
        except GuestExit as exc:
            assert exc.code == 0
    assert config.stdout == b"fallocate ok\n"
    assert (tmp_path / "small").stat().st_size == 3000


def test_fd_allocate_charges_growth_not_space_the_file_already_has(tmp_path: Path) -> None:
    """A dense 64 KiB file: allocating inside it reserves nothing new and costs nothing;
    growing it by 8 KiB costs 8 KiB; growing it past the cap is refused unchanged."""
    (tmp_path / "f").write_bytes(os.urandom(16 * 4096))
    with _plugin(_config(preopens=[Preopen(tmp_path, "/d")]), output=3 * 4096) as plugin:
        fd = _open(plugin, "f")
        assert plugin.call_int("fd_allocate", fd, 0, 16 * 4096) == 0
        assert plugin.output_used == 0
        assert plugin.call_int("fd_allocate", fd, 2 * 4096, 16 * 4096) == 0
        assert plugin.output_used == 2 * 4096
        with pytest.raises(OutputLimitExceeded):
            plugin.call_int("fd_allocate", fd, 0, 24 * 4096)
    assert (tmp_path / "f").stat().st_size == 18 * 4096


def test_fd_filestat_set_size_growth_is_charged_shrinking_is_free(tmp_path: Path) -> None:
    """Growing a file (even sparsely) makes that many bytes visible to whoever reads it:
    charged before the file changes. Truncating costs nothing."""
    (tmp_path / "f").write_bytes(bytes(1000))
    with _plugin(_config(preopens=[Preopen(tmp_path, "/d")]), output=4096) as plugin:
        fd = _open(plugin, "f")
        with pytest.raises(OutputLimitExceeded):
            plugin.call_int("fd_filestat_set_size", fd, MiB)
        assert (tmp_path / "f").stat().st_size == 1000
        assert plugin.call_int("fd_filestat_set_size", fd, 5000) == 0
        assert plugin.output_used == 4000
        assert plugin.call_int("fd_filestat_set_size", fd, 10) == 0
        assert plugin.output_used == 0
    assert (tmp_path / "f").stat().st_size == 10
