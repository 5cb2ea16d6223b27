"""The committed guests, run on wasmtime's *native* WASI and plain instantiation.

These tests prove the guests themselves, independently of callgate's runtime:
each output is checked against an expectation computed here by Python (its own
word count, file copy, directory listing), never against output of the code
under test. The differential tests later run the same guests under callgate and
compare with this native peer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from hypothesis import given, settings, strategies as st
from native_wasi import ENGINE, StubFactory, module, run_native

# --- WASI command guests -------------------------------------------------------------


def test_cat_copies_stdin() -> None:
    data = bytes(range(256)) * 40 + b"tail without newline"
    run = run_native("cat", stdin=data)
    assert (run.code, run.stdout, run.stderr) == (0, data, b"")


def test_cat_concatenates_files_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"first\n")
    (tmp_path / "b").write_bytes(b"\x00second")
    run = run_native("cat", ("/d/a", "/d/missing", "-", "/d/b"),
                     stdin=b"[stdin]", dirs={"/d": tmp_path})
    assert run.code == 1
    assert run.stdout == b"first\n[stdin]\x00second"
    assert b"/d/missing" in run.stderr and b"No such file" in run.stderr


@pytest.mark.parametrize("chunk", [1, 512, 65536])
def test_copyfile_copies_exactly(tmp_path: Path, chunk: int) -> None:
    size = 5000 if chunk == 1 else 200_003  # byte-at-a-time copies are slow-ish
    data = os.urandom(size)
    (tmp_path / "src.bin").write_bytes(data)
    run = run_native("copyfile", ("/w/src.bin", "/w/dst.bin", str(chunk)),
                     dirs={"/w": tmp_path})
    assert (run.code, run.stdout) == (0, f"copied {size} bytes\n".encode())
    assert (tmp_path / "dst.bin").read_bytes() == data


def test_copyfile_truncates_existing_destination(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"short")
    (tmp_path / "dst").write_bytes(b"a much longer previous content")
    run = run_native("copyfile", ("/w/src", "/w/dst", "3"), dirs={"/w": tmp_path})
    assert run.code == 0
    assert (tmp_path / "dst").read_bytes() == b"short"


@pytest.mark.parametrize("args", [(), ("a", "b"), ("a", "b", "0"), ("a", "b", "x1")])
def test_copyfile_rejects_bad_usage(args: tuple[str, ...]) -> None:
    run = run_native("copyfile", args)
    assert run.code == 2 and run.stdout == b"" and run.stderr


def test_copyfile_missing_source_fails(tmp_path: Path) -> None:
    run = run_native("copyfile", ("/w/nope", "/w/out", "512"), dirs={"/w": tmp_path})
    assert run.code == 1 and b"open /w/nope" in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("n", [0, 1, 5000])
def test_lines_prints_n_lines(n: int) -> None:
    run = run_native("lines", (str(n),))
    assert run.code == 0
    assert run.stdout == "".join(f"line {i}\n" for i in range(1, n + 1)).encode()


def test_lines_with_text_and_bad_usage() -> None:
    assert run_native("lines", ("3", "x y")).stdout == b"1 x y\n2 x y\n3 x y\n"
    assert run_native("lines", ("-1",)).code == 2


def test_envargs_prints_args_env_and_exits_with_code() -> None:
    env = {"HOME": "/nowhere", "EMPTY": "", "EXIT_CODE": "42", "UTF8": "żółw"}
    args = ("one", "two words", "")
    run = run_native("envargs", args, env=env)
    argv = ("envargs", *args)
    expected = [f"argc={len(argv)}"] + [f"argv[{i}]={a}" for i, a in enumerate(argv)]
    expected += [f"env {k}={v}" for k, v in env.items()]
    assert run.stdout.decode() == "".join(line + "\n" for line in expected)
    assert run.code == 42


def test_envargs_default_exit_code() -> None:
    run = run_native("envargs")
    assert (run.code, run.stdout) == (0, b"argc=1\nargv[0]=envargs\n")


def expected_listing(directory: Path) -> bytes:
    """What listdir must print, computed from Python's own lstat/readlink."""
    lines = []
    for name in sorted(os.listdir(directory), key=os.fsencode):
        path = directory / name
        st_ = path.lstat()
        if path.is_symlink():
            lines.append(f"{name} link -> {os.readlink(path)}")
        elif path.is_dir():
            lines.append(f"{name} dir")
        elif path.is_file():
            lines.append(f"{name} file {st_.st_size}")
        else:
            lines.append(f"{name} other")
    return "".join(line + "\n" for line in lines).encode()


def test_listdir_matches_python(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "b.txt").write_bytes(b"x" * 1234)
    (root / "a.txt").write_bytes(b"")
    (root / "Z").write_bytes(b"upper")
    (root / "link").symlink_to("b.txt")
    (root / "dangling").symlink_to("nowhere/at/all")
    os.mkfifo(root / "pipe")
    run = run_native("listdir", ("/r",), dirs={"/r": root})
    assert run.code == 0, run.stderr
    assert run.stdout == expected_listing(root)
    assert b"pipe other\n" in run.stdout and b"link link -> b.txt\n" in run.stdout


def test_listdir_missing_dir(tmp_path: Path) -> None:
    run = run_native("listdir", ("/r/none",), dirs={"/r": tmp_path})
    assert run.code == 1 and b"/r/none" in run.stderr


def fd_allocate_answering(errno: int) -> StubFactory:
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    sig = wasmtime.FuncType([i32, i64, i64], [i32])
    return lambda store: wasmtime.Func(store, sig, lambda fd, offset, length: errno)


@pytest.mark.parametrize("errno, code, output", [
    (None, 0, b"fallocate unavailable (Not supported); wrote zeros\n"),  # wasmtime: ENOTSUP
    (52, 0, b"fallocate unavailable (Function not implemented); wrote zeros\n"),  # ENOSYS
    (0, 0, b"fallocate ok\n"),
    (63, 1, b""),  # EPERM: a real failure, no fallback
])
def test_fallback_path_depends_on_the_errno(tmp_path: Path, errno: int | None, code: int,
                                            output: bytes) -> None:
    stubs = {} if errno is None else {"fd_allocate": fd_allocate_answering(errno)}
    run = run_native("fallback", ("/w/f", "10000"), dirs={"/w": tmp_path}, stubs=stubs)
    assert (run.code, run.stdout) == (code, output)
    size = (tmp_path / "f").stat().st_size
    if errno == 63:
        assert size == 0 and b"Operation not permitted" in run.stderr
    elif errno != 0:  # the stub allocates nothing, so only the fallback makes the size
        assert size == 10000 and (tmp_path / "f").read_bytes() == bytes(10000)


def path_open_answering(errno: int) -> StubFactory:
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    sig = wasmtime.FuncType([i32, i32, i32, i32, i32, i64, i64, i32, i32], [i32])
    return lambda store: wasmtime.Func(store, sig, lambda *args: errno)


@pytest.mark.parametrize("errno, code, stdout, stderr", [
    (52, 0, b"config: none, using defaults\n", b""),  # ENOSYS: no filesystem, run on defaults
    (44, 0, b"config: none, using defaults\n", b""),  # ENOENT
    (63, 1, b"", b"config: /c/app.conf: Operation not permitted\n"),  # EPERM: stop
    (2, 1, b"", b"config: /c/app.conf: Permission denied\n"),  # EACCES
])
def test_config_path_depends_on_path_open_errno(tmp_path: Path, errno: int, code: int,
                                                stdout: bytes, stderr: bytes) -> None:
    (tmp_path / "app.conf").write_text("colour = blue\n")
    run = run_native("config", ("/c/app.conf",), dirs={"/c": tmp_path},
                     stubs={"path_open": path_open_answering(errno)})
    assert (run.code, run.stdout, run.stderr) == (code, stdout, stderr)


def test_config_reads_a_real_file_or_finds_none(tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("colour = blue\nsize = 3\n")
    run = run_native("config", ("/c/app.conf",), dirs={"/c": tmp_path})
    assert (run.code, run.stdout) == (0, b"config: colour = blue\n")
    run = run_native("config", ("/c/other.conf",), dirs={"/c": tmp_path})
    assert (run.code, run.stdout) == (0, b"config: none, using defaults\n")


# --- bytes-ABI guests by plain instantiation -------------------------------------------


GateFactory = Callable[[wasmtime.Store], dict[str, wasmtime.Func]]


class BytesPlugin:
    """A minimal bytes-ABI caller (cg_alloc, copy in, call, unpack), for proving guests."""

    def __init__(self, name: str, gates: GateFactory | None = None) -> None:
        self.store = wasmtime.Store(ENGINE)
        linker = wasmtime.Linker(ENGINE)
        for gate, func in (gates(self.store) if gates else {}).items():
            linker.define(self.store, "callgate", gate, func)
        self.exports = linker.instantiate(self.store, module(name)).exports(self.store)
        if "_initialize" in self.exports:
            self.exports["_initialize"](self.store)
        self.memory: wasmtime.Memory = self.exports["memory"]

    def call(self, func: str, data: bytes) -> bytes:
        ptr = self.exports["cg_alloc"](self.store, len(data))
        assert ptr != 0
        self.memory.write(self.store, data, ptr)
        packed = self.exports[func](self.store, ptr, len(data)) & 0xFFFF_FFFF_FFFF_FFFF
        out_ptr, out_len = packed >> 32, packed & 0xFFFF_FFFF
        assert out_ptr + out_len <= self.memory.data_len(self.store)
        return self.memory.read(self.store, out_ptr, out_ptr + out_len)


def python_wordcount(data: bytes) -> dict[str, int]:
    return {"lines": data.count(b"\n"), "words": len(data.split()), "bytes": len(data)}


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000) | st.text(alphabet=" \t\n\r\x0b\x0cab\u00e9", max_size=300)
       .map(str.encode))
def test_wordcount_matches_python(data: bytes) -> None:
    plugin = BytesPlugin("wordcount")
    assert json.loads(plugin.call("wordcount", data)) == python_wordcount(data)


def test_wordcount_reuses_memory_across_calls() -> None:
    """Input is freed and output replaced each call, so memory stays flat."""
    plugin = BytesPlugin("wordcount")
    data = b"the quick brown fox\n" * 5000
    plugin.call("wordcount", data)
    size = plugin.memory.data_len(plugin.store)
    for _ in range(50):
        assert json.loads(plugin.call("wordcount", data)) == python_wordcount(data)
    assert plugin.memory.data_len(plugin.store) == size


def test_upper_freestanding_in_place() -> None:
    plugin = BytesPlugin("upper")
    assert not module("upper").imports
    text = "Hello, wörld! az AZ {}".encode()
    assert plugin.call("upper", text) == "HELLO, WöRLD! AZ AZ {}".encode()
    big = bytes(range(256)) * 1000  # grows memory past the first page
    assert plugin.call("upper", big) == big.translate(bytes.maketrans(
        b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    assert plugin.call("upper", b"") == b""


def test_hello_add_echo_greet() -> None:
    plugin = BytesPlugin("hello")
    assert plugin.exports["add"](plugin.store, 2**62, 2**62) == -(2**63)  # wraps like i64
    assert plugin.call("echo", b"\x00abc\xff") == b"\x00abc\xff"
    assert plugin.call("echo", b"") == b""
    assert plugin.call("greet", b"world") == b"hello, world"
    big = os.urandom(200_000)  # more than the initial page: cg_alloc must grow memory
    assert plugin.call("greet", big) == b"hello, " + big


def kv_gates(store: wasmtime.Store, table: dict[bytes, bytes]) -> dict[str, wasmtime.Func]:
    """Host side of kv_get/kv_put as documented in kvstore.c (a dict; -44 = -ENOENT)."""
    i32 = wasmtime.ValType.i32()
    sig = wasmtime.FuncType([i32] * 4, [i32])

    def kv_get(caller: wasmtime.Caller, kp: int, kl: int, vp: int, cap: int) -> int:
        mem = caller["memory"]
        key = bytes(mem.read(caller, kp, kp + kl))
        if key not in table:
            return -44
        value = table[key]
        mem.write(caller, value[:cap], vp)
        return len(value)

    def kv_put(caller: wasmtime.Caller, kp: int, kl: int, vp: int, vl: int) -> int:
        mem = caller["memory"]
        table[bytes(mem.read(caller, kp, kp + kl))] = bytes(mem.read(caller, vp, vp + vl))
        return 0

    return {"kv_get": wasmtime.Func(store, sig, kv_get, access_caller=True),
            "kv_put": wasmtime.Func(store, sig, kv_put, access_caller=True)}


def test_kvstore_put_get_through_app_gates() -> None:
    table: dict[bytes, bytes] = {}
    plugin = BytesPlugin("kvstore", lambda store: kv_gates(store, table))

    assert plugin.call("put", b"colour=blue=ish") == b"ok"
    assert table == {b"colour": b"blue=ish"}
    assert plugin.call("get", b"colour") == b"blue=ish"
    assert plugin.call("get", b"missing") == b"error 44"
    assert plugin.call("put", b"no equals sign") == b"error 28"
    long_value = bytes(range(256)) * 10  # longer than get's 64-byte first buffer
    assert plugin.call("put", b"k=" + long_value) == b"ok"
    assert plugin.call("get", b"k") == long_value
    assert plugin.call("put", b"=empty key") == b"ok" and table[b""] == b"empty key"


def test_gatecall_passes_all_seven_args() -> None:
    seen: list[tuple[int, ...]] = []
    i64 = wasmtime.ValType.i64()
    store = wasmtime.Store(ENGINE)

    def probe(*args: int) -> int:
        seen.append(args)
        return args[0] * 10 + args[6]

    linker = wasmtime.Linker(ENGINE)
    sig = wasmtime.FuncType([i64] * 7, [i64])
    linker.define(store, "callgate", "probe", wasmtime.Func(store, sig, probe))
    exports = linker.instantiate(store, module("gatecall")).exports(store)
    assert exports["once"](store, -1, 2, 3, 4, 5, 6, 2**63 - 1) == -10 + 2**63 - 1
    assert seen == [(-1, 2, 3, 4, 5, 6, 2**63 - 1)]
    seen.clear()
    assert exports["run"](store, 100) == sum(i * 10 + 7 for i in range(100))
    assert seen == [(i, 2, 3, 4, 5, 6, 7) for i in range(100)]
    assert exports["run"](store, 0) == 0


def test_gatecall1_one_arg() -> None:
    i64 = wasmtime.ValType.i64()
    store = wasmtime.Store(ENGINE)
    linker = wasmtime.Linker(ENGINE)
    linker.define(store, "callgate", "probe1",
                  wasmtime.Func(store, wasmtime.FuncType([i64], [i64]), lambda a: a + 1))
    exports = linker.instantiate(store, module("gatecall1")).exports(store)
    assert exports["once"](store, 41) == 42
    assert exports["run"](store, 1000) == sum(i + 1 for i in range(1000))


# POSIX semantics of fsops.c's script, step by step (see the comments there).
FSOPS_EXPECTED = """\
mkdir a: ok
mkdir a again: File exists
create a/f: ok
write: 12
pwrite at 0: 5
seek end: 12
seek back 6: 6
fsync: ok
fdatasync: ok
fadvise: ok
truncate to 5: ok
size after truncate: 5
close a/f: ok
append: 1
pread all: HELLO!
pread 3 at 2: LLO
rename a/f a/g: ok
stat a/f: No such file or directory
link a/g a/h: ok
nlink of a/g: 2
symlink g a/s: ok
readlink a/s: g
size through a/s: 6
a/s is a link: yes
unlink a/h: ok
nlink of a/g: 1
utimensat a/g: ok
mtime of a/g: 1000000000
rmdir a: Directory not empty
unlink a: Is a directory
open a/missing: No such file or directory
open a for writing: Is a directory
rename a/g a/nodir/g: No such file or directory
mkdir a/sub: ok
rmdir a/sub: ok
a holds: g s
"""


def test_fsops_script_and_resulting_tree(tmp_path: Path) -> None:
    run = run_native("fsops", ("/w",), dirs={"/w": tmp_path})
    assert (run.code, run.stderr) == (0, b"")
    assert run.stdout.decode() == FSOPS_EXPECTED
    tree = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert tree == ["a", "a/g", "a/s"]
    assert (tmp_path / "a" / "g").read_bytes() == b"HELLO!"
    assert (tmp_path / "a" / "g").stat().st_mtime == 1_000_000_000
    assert os.readlink(tmp_path / "a" / "s") == "g"


def test_timerand_properties_hold() -> None:
    run = run_native("timerand")
    lines = run.stdout.decode().splitlines()
    assert len(lines) == 7 and all(line.endswith(": yes") for line in lines), lines
    assert run.code == 0


HELLO_LINE = b"hello from learnme (the clock says after 1970)\n"


@pytest.mark.parametrize("args, stdout, stderr", [
    ((), HELLO_LINE, b""),
    (("--stderr",), HELLO_LINE, b"a line on stderr\n"),
    (("--random",), HELLO_LINE + b"drew 16 random bytes\n", b""),
    (("--file", "/d/x.txt"), HELLO_LINE + b"first line of /d/x.txt: first\n", b""),
])
def test_learnme_variants(tmp_path: Path, args: tuple[str, ...], stdout: bytes,
                          stderr: bytes) -> None:
    (tmp_path / "x.txt").write_text("first\nsecond\n")
    run = run_native("learnme", args, dirs={"/d": tmp_path})
    assert (run.code, run.stdout, run.stderr) == (0, stdout, stderr)


def test_learnme_reports_failed_access(tmp_path: Path) -> None:
    run = run_native("learnme", ("--file", "/d/none"), dirs={"/d": tmp_path})
    assert run.code == 1 and run.stdout.endswith(b"file /d/none: No such file or directory\n")
    assert run_native("learnme", ("--bogus",)).code == 2
