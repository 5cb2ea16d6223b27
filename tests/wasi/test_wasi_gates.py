"""The WASI gates called directly, the way the dispatcher calls them, over fake guest memory.

A ``GateCall`` whose memory is ``GuestMemory.over(bytearray)`` lets each gate be
driven with exact pointers (including hostile ones) and its effect on memory and
on the host checked byte by byte, without a wasm module in between.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings, strategies as st
from native_wasi import WASM

from callgate.arch import native_arch, wasi_errno as E
from callgate.arch.gate_numbers import WASI_NUMBERS
from callgate.gates.errors import GuestTrap
from callgate.gates.memory import GuestMemory
from callgate.gates.spec import GateCall, GuestExit
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider, WasiState, types as T, wasi_specs
from callgate.gates.wasi.identity import guest_ino
from callgate.runtime import Plugin

MEM = 65536
SPECS = {spec.name: spec for spec in wasi_specs()}
W = E.WASI_ERRNO


class Deadline(Exception):
    pass


class FakePlugin:
    """What gates ask of a plugin (GateHost): output accounting and the call's deadline.

    ``deadline`` False is a plugin without one (``remaining_time()`` None).
    """

    name = "fake"

    def __init__(self, deadline: bool = True) -> None:
        self.output = 0
        self.deadline = deadline

    def charge_output(self, n: int) -> None:
        self.output += n

    def remaining_time(self) -> float | None:
        return 0.0 if self.deadline else None

    def check_deadline(self) -> None:
        if self.deadline:
            raise Deadline


class Guest:
    """A WasiState plus a bytearray memory, with helpers to place data and call gates."""

    def __init__(self, config: WasiConfig, size: int = MEM) -> None:
        self.state = WasiState(config)
        self.buf = bytearray(size)
        self.memory = GuestMemory.over(self.buf)
        self.plugin = FakePlugin()
        self.top = 1024

    def call(self, name: str, *args: int) -> Any:
        spec = SPECS[name]
        return spec.func(GateCall(spec, self.memory, self.state, self.plugin), *args)

    def put(self, data: bytes) -> int:
        ptr = self.top
        self.buf[ptr:ptr + len(data)] = data
        self.top += (len(data) + 15) & ~7
        return ptr

    def path(self, text: str | bytes) -> tuple[int, int]:
        raw = text.encode() if isinstance(text, str) else text
        return self.put(raw), len(raw)

    def u32(self, ptr: int) -> int:
        return struct.unpack_from("<I", self.buf, ptr)[0]

    def u64(self, ptr: int) -> int:
        return struct.unpack_from("<Q", self.buf, ptr)[0]

    def open(self, dirfd: int, path: str, oflags: int = 0, rights: int = T.RIGHTS_FILE,
             fdflags: int = 0, follow: int = 1) -> tuple[int, int]:
        ptr, n = self.path(path)
        ret = self.put(bytes(4))
        errno = self.call("path_open", dirfd, follow, ptr, n, oflags, rights, T.RIGHTS_ALL,
                          fdflags, ret)
        return errno, self.u32(ret)

    def write(self, fd: int, data: bytes) -> tuple[int, int]:
        buf = self.put(data)
        iov = self.put(struct.pack("<II", buf, len(data)))
        ret = self.put(bytes(4))
        return self.call("fd_write", fd, iov, 1, ret), self.u32(ret)

    def read(self, fd: int, n: int) -> tuple[int, bytes]:
        buf = self.put(bytes(n))
        iov = self.put(struct.pack("<II", buf, n))
        ret = self.put(bytes(4))
        errno = self.call("fd_read", fd, iov, 1, ret)
        return errno, bytes(self.buf[buf:buf + self.u32(ret)])

    def close(self) -> None:
        self.state.close()


@pytest.fixture
def guest(tmp_path: Path) -> Any:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "data").write_bytes(b"read me")
    g = Guest(WasiConfig(args=("prog", "a1", "ärg"), env={"K": "V", "E": ""},
                         preopens=[Preopen(tmp_path, "/w"), Preopen(tmp_path / "ro", "/ro", True)],
                         stdin=b"input bytes", stdout=bytearray(), stderr=bytearray()))
    yield g
    g.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- the table of gates ------------------------------------------------------------------

def test_every_preview1_function_with_wasmtimes_signature() -> None:
    """Numbers in witx order; params/results exactly as wasmtime's own WASI declares them."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store.set_wasi(wasmtime.WasiConfig())
    assert sorted(SPECS) == sorted(WASI_NUMBERS)
    for name, spec in SPECS.items():
        assert spec.number == WASI_NUMBERS[name]
        ty = linker.get(store, "wasi_snapshot_preview1", name).type(store)
        assert spec.params == tuple(str(p) for p in ty.params), name
        assert spec.results == tuple(str(r) for r in ty.results), name


def test_declared_syscalls_are_real_syscall_names() -> None:
    names = set(native_arch().numbers)
    for spec in SPECS.values():
        assert spec.syscalls <= names, (spec.name, spec.syscalls - names)
    assert "openat2" in SPECS["path_open"].syscalls


# -- guest memory -------------------------------------------------------------------------

def test_bad_pointers_are_efault_never_exceptions(guest: Guest) -> None:
    end = MEM
    assert guest.call("fd_write", 1, end - 4, 1, 0) == E.EFAULT            # iovec array cut
    iov = guest.put(struct.pack("<II", end - 2, 10))                        # buffer past end
    assert guest.call("fd_write", 1, iov, 1, 0) == E.EFAULT
    assert guest.call("fd_write", 1, 0xFFFFFFF0, 0xFFFFFFF, 0) == E.EFAULT  # huge count
    good = guest.put(struct.pack("<II", guest.put(b"x"), 1))
    assert guest.call("fd_write", 1, good, 1, end) == E.EFAULT              # result pointer
    assert guest.call("args_sizes_get", end, 0) == E.EFAULT
    assert guest.call("args_get", end - 4, 0) == E.EFAULT
    assert guest.call("random_get", end - 10, 11) == E.EFAULT
    assert guest.call("path_open", 3, 0, end - 1, 5, 0, 0, 0, 0, 0) == E.EFAULT
    assert guest.call("fd_prestat_get", 3, end - 7) == E.EFAULT
    assert guest.call("clock_time_get", 0, 0, end - 7) == E.EFAULT
    assert guest.call("poll_oneoff", end - 10, 0, 1, 0) == E.EFAULT
    assert guest.state.config.stdout == bytearray()  # nothing half-written


def test_efault_checks_before_any_effect(guest: Guest, tmp_path: Path) -> None:
    """A failing result pointer must not leave an opened host fd behind."""
    before = _open_fds()
    ptr, n = guest.path("ro/data")
    assert guest.call("path_open", 3, 0, ptr, n, 0, T.R["FD_READ"], 0, 0, MEM) == E.EFAULT
    assert _open_fds() == before and len(guest.state.table.entries) == 5


def test_every_iovec_is_validated(guest: Guest) -> None:
    data = guest.put(b"hello")
    iovs = guest.put(struct.pack("<IIII", data, 5, MEM - 1, 2))  # second one is bad
    assert guest.call("fd_write", 1, iovs, 2, guest.put(bytes(4))) == E.EFAULT
    assert guest.state.config.stdout == bytearray()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(SPECS)), st.lists(st.one_of(
    st.integers(0, 8), st.integers(MEM - 64, MEM + 64), st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1)), min_size=9, max_size=9))
def test_hostile_arguments_never_raise(guest: Guest, name: str, args: list[int]) -> None:
    spec = SPECS[name]
    if name in ("sock_accept",):
        args[0] = 0  # stdin: ENOTSOCK rather than blocking on a socket
    if name == "proc_exit":  # ends the guest: an exit below 126, else a trap (wasmtime's)
        status = args[0] & 0xFFFFFFFF
        with pytest.raises(GuestExit if status < 126 else GuestTrap):
            guest.call(name, status)
        return
    values = [a & (0xFFFFFFFF if kind == "i32" else 2**64 - 1)
              for a, kind in zip(args, spec.params, strict=False)]
    try:
        result = guest.call(name, *values)
    except Deadline:
        return  # poll_oneoff waiting on a clock: the plugin's deadline ends it
    assert isinstance(result, int) and 0 <= result <= max(E.WASI_ERRNO.values())


# -- paths ---------------------------------------------------------------------------------

def test_invalid_utf8_is_eilseq_and_nul_is_einval(guest: Guest) -> None:
    ptr, n = guest.path(b"bad\xff\xfe")
    assert guest.call("path_create_directory", 3, ptr, n) == W["EILSEQ"]
    ptr, n = guest.path(b"nul\0x")
    assert guest.call("path_create_directory", 3, ptr, n) == E.EINVAL


def test_read_only_preopen_refuses_every_change(guest: Guest, tmp_path: Path) -> None:
    errno, fd = guest.open(4, "data", rights=T.R["FD_READ"] | T.R["FD_FILESTAT_SET_TIMES"])
    assert errno == 0 and guest.read(fd, 100) == (0, b"read me")
    mtime = (tmp_path / "ro" / "data").stat().st_mtime_ns
    assert guest.call("fd_filestat_set_times", fd, 0, 0, T.FSTFLAGS_MTIM_NOW) == E.EPERM
    assert guest.write(fd, b"x")[0] == E.EBADF
    assert guest.open(4, "data", rights=T.R["FD_WRITE"])[0] == E.EPERM
    assert guest.open(4, "new", oflags=T.OFLAGS_CREAT, rights=T.R["FD_READ"])[0] == E.EPERM
    assert guest.open(4, "data", oflags=T.OFLAGS_TRUNC, rights=T.R["FD_READ"])[0] == E.EPERM
    for gate in ("path_create_directory", "path_unlink_file", "path_remove_directory"):
        ptr, n = guest.path("data")
        assert guest.call(gate, 4, ptr, n) == E.EPERM, gate
    old, on = guest.path("data")
    new, nn = guest.path("moved")
    assert guest.call("path_rename", 4, old, on, 4, new, nn) == E.EPERM
    assert guest.call("path_rename", 4, old, on, 3, new, nn) == E.EPERM
    assert guest.call("path_symlink", old, on, 4, new, nn) == E.EPERM
    # A hard link from the read-only preopen into the writable one would be a writable alias.
    assert guest.call("path_link", 4, 0, old, on, 3, new, nn) == E.EPERM
    assert not (tmp_path / "moved").exists()
    errno, dirfd = guest.open(4, ".", oflags=T.OFLAGS_DIRECTORY, rights=T.RIGHTS_DIRECTORY)
    assert errno == 0 and guest.call("path_create_directory", dirfd, new, nn) == E.EPERM
    assert sorted(os.listdir(tmp_path / "ro")) == ["data"]
    assert (tmp_path / "ro" / "data").read_bytes() == b"read me"
    assert (tmp_path / "ro" / "data").stat().st_mtime_ns == mtime


# -- rights ---------------------------------------------------------------------------------

def _fdstat_rights(guest: Guest, fd: int) -> tuple[int, int]:
    stat = guest.put(bytes(24))
    assert guest.call("fd_fdstat_get", fd, stat) == 0
    return guest.u64(stat + 8), guest.u64(stat + 16)


def test_rights_are_advisory_as_in_wasmtime(guest: Guest, tmp_path: Path) -> None:
    """wasmtime's values (measured, wasmtime-py 50): a preopen, any other directory and a
    file show fixed sets whatever was asked for; only FD_READ/FD_WRITE choose how the file
    is opened, and that decides what it can do."""
    (tmp_path / "f").write_bytes(b"abc")
    assert _fdstat_rights(guest, 3) == (0x7B7FE00, 0xFF7FFFF)
    errno, rw = guest.open(3, "f", rights=T.R["FD_READ"] | T.R["FD_WRITE"])
    assert errno == 0 and _fdstat_rights(guest, rw) == (0x3FFFFFFF, 0x3FFFFFFF)
    errno, nothing = guest.open(3, "f", rights=0)  # no rights asked: opened for reading
    assert errno == 0 and _fdstat_rights(guest, nothing) == (0x3FFFFFBF, 0x3FFFFFBF)
    assert guest.read(nothing, 3) == (0, b"abc")
    errno, wo = guest.open(3, "f", rights=T.R["FD_WRITE"] | T.R["FD_READDIR"])
    assert errno == 0 and _fdstat_rights(guest, wo) == (0x3FFFBFFD, 0x3FFFBFFD)
    assert guest.read(wo, 3)[0] == E.EBADF
    errno, ro = guest.open(3, "f", rights=T.R["FD_READ"] | T.R["FD_ALLOCATE"]
                           | T.R["FD_FILESTAT_SET_SIZE"])
    assert errno == 0 and _fdstat_rights(guest, ro) == (0x3FFFFFBF, 0x3FFFFFBF)
    assert guest.call("fd_filestat_set_size", ro, 1) == E.EINVAL  # the host's answer
    errno, d = guest.open(3, ".", oflags=T.OFLAGS_DIRECTORY, rights=0)
    assert errno == 0 and _fdstat_rights(guest, d) == (0x3FB7FFBB, 0x3FB7FFBB)
    assert guest.call("fd_sync", d) == E.EBADF
    # Rights cannot be changed (ENOTSUP; EBADF on stdio), so nothing else can narrow them.
    assert guest.call("fd_fdstat_set_rights", rw, T.R["FD_READ"], 0) == W["ENOTSUP"]
    assert guest.call("fd_fdstat_set_rights", 3, 0, 0) == W["ENOTSUP"]
    assert guest.call("fd_fdstat_set_rights", 1, 0, 0) == E.EBADF
    assert _fdstat_rights(guest, rw) == (0x3FFFFFFF, 0x3FFFFFFF)


# -- the fd table ----------------------------------------------------------------------------

def test_fd_limit_and_no_leak(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    before = _open_fds()
    g = Guest(WasiConfig(preopens=[Preopen(tmp_path, "/w")], max_fds=6, stdout=bytearray(),
                         stderr=bytearray()))
    opened = [g.open(3, "f", rights=T.R["FD_READ"]) for _ in range(4)]
    assert [e for e, _ in opened] == [0, 0, W["EMFILE"], W["EMFILE"]]
    assert _open_fds() == before + 3  # preopen + two files; refused opens closed at once
    g.close()
    assert _open_fds() == before


def test_renumber_and_close(guest: Guest, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"AAA")
    (tmp_path / "b").write_bytes(b"BBB")
    fa = guest.open(3, "a", rights=T.R["FD_READ"])[1]
    fb = guest.open(3, "b", rights=T.R["FD_READ"])[1]
    before = _open_fds()
    assert guest.call("fd_renumber", fa, 99) == E.EBADF     # target must be open
    assert guest.call("fd_renumber", fa, fb) == 0
    assert _open_fds() == before - 1                        # b's host fd closed
    assert guest.read(fb, 3) == (0, b"AAA")
    assert guest.call("fd_close", fa) == E.EBADF
    assert guest.call("fd_close", fb) == 0 and guest.call("fd_close", fb) == E.EBADF
    # wasmtime's numbering: the highest freed number first (fb, then fa)
    assert guest.open(3, "a", rights=T.R["FD_READ"])[1] == fb
    assert guest.open(3, "a", rights=T.R["FD_READ"])[1] == fa


# -- stdio ---------------------------------------------------------------------------------

def test_stdio_fed_and_captured(guest: Guest) -> None:
    assert guest.read(0, 5) == (0, b"input")
    assert guest.read(0, 100) == (0, b" bytes")
    assert guest.read(0, 100) == (0, b"")
    assert guest.write(1, b"out") == (0, 3)
    assert guest.write(2, b"err!") == (0, 4)
    assert guest.state.config.stdout == b"out" and guest.state.config.stderr == b"err!"
    assert guest.plugin.output == 7
    assert guest.write(0, b"x")[0] == E.EBADF
    assert guest.read(1, 1)[0] == E.EBADF
    ret = guest.put(bytes(8))
    assert guest.call("fd_seek", 1, 0, T.WHENCE_CUR, ret) == W["ESPIPE"]


def test_args_and_environ_layout(guest: Guest) -> None:
    count, size = guest.put(bytes(4)), guest.put(bytes(4))
    assert guest.call("args_sizes_get", count, size) == 0
    blob = b"prog\0a1\0" + "ärg".encode() + b"\0"
    assert (guest.u32(count), guest.u32(size)) == (3, len(blob))
    ptrs, buf = guest.put(bytes(12)), guest.put(bytes(len(blob)))
    assert guest.call("args_get", ptrs, buf) == 0
    assert bytes(guest.buf[buf:buf + len(blob)]) == blob
    assert [guest.u32(ptrs + 4 * i) - buf for i in range(3)] == [0, 5, 8]
    assert guest.call("environ_sizes_get", count, size) == 0
    assert (guest.u32(count), guest.u32(size)) == (2, len(b"K=V\0E=\0"))


def test_process_gates(guest: Guest) -> None:
    with pytest.raises(GuestExit) as exit_:
        guest.call("proc_exit", 42)
    assert exit_.value.code == 42
    assert guest.call("proc_raise", 9) == E.ENOSYS
    assert guest.call("sched_yield") == 0
    buf = guest.put(bytes(64))
    assert guest.call("random_get", buf, 64) == 0 and any(guest.buf[buf:buf + 64])
    t = guest.put(bytes(8))
    assert guest.call("clock_time_get", T.CLOCK_MONOTONIC, 0, t) == 0
    first = guest.u64(t)
    assert guest.call("clock_time_get", T.CLOCK_MONOTONIC, 0, t) == 0 and guest.u64(t) >= first
    for clock in (T.CLOCK_REALTIME, T.CLOCK_MONOTONIC):
        assert guest.call("clock_res_get", clock, t) == 0 and guest.u64(t) > 0
    for clock in (T.CLOCK_PROCESS_CPUTIME_ID, T.CLOCK_THREAD_CPUTIME_ID):  # as wasmtime
        assert guest.call("clock_res_get", clock, t) == E.EBADF
        assert guest.call("clock_time_get", clock, 0, t) == E.EBADF
    assert guest.call("clock_res_get", 4, t) == E.EINVAL


# -- readdir ---------------------------------------------------------------------------------

def test_readdir_layout_cookies_and_truncation(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "file").write_bytes(b"x")
    (root / "sub").mkdir()
    g = Guest(WasiConfig(preopens=[Preopen(root, "/d")]))
    names = [b".", b"..", *(os.fsencode(n) for n in os.listdir(root))]  # host order
    kinds = {b".": 3, b"..": 3, b"file": 4, b"sub": 3}
    def ino(path: Path) -> int:  # what wasmtime shows: a hash of the host's (dev, ino)
        return guest_ino(path.stat().st_dev, path.stat().st_ino)

    inos = {b".": ino(root), b"..": ino(root), b"file": ino(root / "file"),
            b"sub": ino(root / "sub")}
    full = b"".join(struct.pack("<QQIB3x", i + 1, inos[n], len(n), kinds[n]) + n
                    for i, n in enumerate(names))
    buf, ret = g.put(bytes(512)), g.put(bytes(4))
    assert g.call("fd_readdir", 3, buf, 512, 0, ret) == 0
    assert bytes(g.buf[buf:buf + g.u32(ret)]) == full
    for size in (0, 1, 24, 25, 30, len(full) - 1):
        assert g.call("fd_readdir", 3, buf, size, 0, ret) == 0
        assert g.u32(ret) == size and bytes(g.buf[buf:buf + size]) == full[:size]
    cookie_of_third = 2
    assert g.call("fd_readdir", 3, buf, 512, cookie_of_third, ret) == 0
    skip = 2 * 24 + 1 + 2
    assert bytes(g.buf[buf:buf + g.u32(ret)]) == full[skip:]
    assert g.call("fd_readdir", 3, buf, 512, 1000, ret) == 0 and g.u32(ret) == 0
    g.close()


# -- poll and sockets ------------------------------------------------------------------------

def _sub_clock(userdata: int, ns: int) -> bytes:
    return T.SUBSCRIPTION.pack(userdata, T.EVENTTYPE_CLOCK,
                               T.SUB_CLOCK.pack(T.CLOCK_MONOTONIC, ns, 0, 0))


def _sub_fd(userdata: int, kind: int, fd: int) -> bytes:
    return T.SUBSCRIPTION.pack(userdata, kind, T.SUB_FD.pack(fd).ljust(32, b"\0"))


def test_poll_oneoff(guest: Guest) -> None:
    out, ret = guest.put(bytes(32 * 4)), guest.put(bytes(4))
    assert guest.call("poll_oneoff", guest.put(bytes(48)), out, 0, ret) == E.EINVAL
    subs = guest.put(_sub_clock(7, 0) + _sub_fd(8, T.EVENTTYPE_FD_READ, 0))
    assert guest.call("poll_oneoff", subs, out, 2, ret) == 0
    events = [T.EVENT.unpack_from(guest.buf, out + 32 * i) for i in range(guest.u32(ret))]
    assert (8, 0, T.EVENTTYPE_FD_READ, 1, 0) in events  # stdin: "1 byte", as in wasmtime
    subs = guest.put(_sub_clock(9, 1000))
    guest.plugin = FakePlugin(deadline=False)  # no deadline: a 1 us clock fires by itself
    assert guest.call("poll_oneoff", subs, out, 1, ret) == 0 and guest.u32(ret) == 1
    assert T.EVENT.unpack_from(guest.buf, out)[:3] == (9, 0, T.EVENTTYPE_CLOCK)
    subs = guest.put(_sub_fd(1, T.EVENTTYPE_FD_READ, 77))
    assert guest.call("poll_oneoff", subs, out, 1, ret) == E.EBADF


def test_sockets_the_host_passed_in(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    g = Guest(WasiConfig(sockets=[theirs, listener], stdout=bytearray()))
    sock_fd, listen_fd = 3, 4
    ours.sendall(b"ping")
    buf, ret, flags = g.put(bytes(16)), g.put(bytes(4)), g.put(bytes(4))
    iov = g.put(struct.pack("<II", buf, 16))
    assert g.call("sock_recv", sock_fd, iov, 1, T.RIFLAGS_RECV_PEEK, ret, flags) == 0
    assert g.call("sock_recv", sock_fd, iov, 1, 0, ret, flags) == 0
    assert bytes(g.buf[buf:buf + g.u32(ret)]) == b"ping"
    data = g.put(b"pong")
    assert g.call("sock_send", sock_fd, g.put(struct.pack("<II", data, 4)), 1, 0, ret) == 0
    assert ours.recv(16) == b"pong"
    assert g.call("sock_shutdown", sock_fd, T.SDFLAGS_WR) == 0
    assert ours.recv(16) == b""
    assert g.call("sock_shutdown", sock_fd, 7) == E.EINVAL
    assert g.call("sock_shutdown", 1, T.SDFLAGS_WR) == W["ENOTSOCK"]
    assert g.call("sock_shutdown", 99, T.SDFLAGS_WR) == E.EBADF
    assert g.call("sock_accept", 1, 0, ret) == W["ENOTSOCK"]
    assert g.call("sock_accept", listen_fd, 0, ret) == 0
    accepted = g.u32(ret)
    client.sendall(b"hi")
    assert g.call("sock_recv", accepted, iov, 1, 0, ret, flags) == 0
    assert bytes(g.buf[buf:buf + g.u32(ret)]) == b"hi"
    g.close()
    os.fstat(theirs.fileno())  # the host's own socket is still open: callgate closed its dup
    for s in (ours, theirs, listener, client):
        s.close()


def test_provider_gives_each_plugin_its_own_state(tmp_path: Path) -> None:
    provider = WasiProvider(WasiConfig(preopens=[Preopen(tmp_path, "/w")]))
    a, b = provider.instance_state(FakePlugin()), provider.instance_state(FakePlugin())
    assert a.table is not b.table and a.table.get(3).host_fd != b.table.get(3).host_fd
    a.close()
    b.close()


def test_guest_echoes_over_a_socket_the_host_passed_in() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    client.sendall(b"hello, gated world")
    client.shutdown(socket.SHUT_WR)
    out = bytearray()
    config = WasiConfig(args=("wasi_sockecho",), sockets=[listener], stdout=out,
                        stderr=bytearray())
    with Plugin(WASM / "wasi_sockecho.wasm", providers=[WasiProvider(config)]) as plugin:
        try:
            plugin.call_int("_start")
        except GuestExit as exc:
            assert exc.code == 0
    echoed = b""
    while chunk := client.recv(256):
        echoed += chunk
    assert echoed == b"HELLO, GATED WORLD"
    assert out == (b"echoed 18\nshutdown 0\nshutdown stdin %d\nclose 0\n" % W["ENOTSOCK"])
    client.close()
    listener.close()


def test_inherited_stdio_flags_stay_the_hosts() -> None:
    """fd_fdstat_set_flags on inherited stdio is refused (EBADF, as in wasmtime): the
    host's fd is never made non-blocking or append-only by a guest."""
    read_end, write_end = os.pipe()
    saved = os.dup(1)
    os.dup2(write_end, 1)
    try:
        g = Guest(WasiConfig(stdout="inherit"))
        flags = T.FDFLAGS_NONBLOCK | T.FDFLAGS_APPEND
        assert g.call("fd_fdstat_set_flags", 1, flags) == E.EBADF
        assert g.call("fd_fdstat_set_rights", 1, 0, 0) == E.EBADF  # fixed, as in wasmtime
        stat = g.put(bytes(24))
        assert g.call("fd_fdstat_get", 1, stat) == 0
        assert g.buf[stat + 2] == 0
        assert os.get_blocking(1)
        g.close()
        assert os.fstat(1)  # closing the plugin's state left the host's stdout open
    finally:
        os.dup2(saved, 1)
        for fd in (saved, read_end, write_end):
            os.close(fd)


def test_set_times_follows_symlinks_only_when_asked(guest: Guest, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "link").symlink_to("file")
    os.utime(tmp_path / "file", ns=(10**18, 10**18))
    os.utime(tmp_path / "link", ns=(10**18, 10**18), follow_symlinks=False)
    ptr, n = guest.path("link")
    assert guest.call("path_filestat_set_times", 3, 0, ptr, n, 0, 5 * 10**18,
                      T.FSTFLAGS_MTIM) == 0
    assert (tmp_path / "link").lstat().st_mtime_ns == 5 * 10**18
    assert (tmp_path / "file").stat().st_mtime_ns == 10**18
    assert guest.call("path_filestat_set_times", 3, T.LOOKUPFLAGS_SYMLINK_FOLLOW, ptr, n,
                      0, 7 * 10**18, T.FSTFLAGS_MTIM) == 0
    assert (tmp_path / "file").stat().st_mtime_ns == 7 * 10**18
    assert (tmp_path / "link").lstat().st_mtime_ns == 5 * 10**18
    stat = guest.put(bytes(64))
    assert guest.call("path_filestat_get", 3, T.LOOKUPFLAGS_SYMLINK_FOLLOW, ptr, n, stat) == 0
    assert T.FILESTAT.unpack_from(guest.buf, stat)[2] == T.FILETYPE_REGULAR_FILE
    assert guest.call("path_filestat_get", 3, 0, ptr, n, stat) == 0
    assert T.FILESTAT.unpack_from(guest.buf, stat)[2] == T.FILETYPE_SYMBOLIC_LINK
