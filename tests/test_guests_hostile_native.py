"""The hostile guests really do what guests/README.md says, shown on plain wasmtime.

These run each hostile module on wasmtime itself (native WASI or stub imports),
with wasmtime's own limits, so they prove the corpus before callgate's runtime
exists: a spin really spins, a bomb really grows, a bad pointer really is out of
range. The runtime's tests then check callgate's typed errors for the same guests.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from native_wasi import ENGINE, module, run_native

I32, I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()


def plain_instance(
    name: str, imports: dict[tuple[str, str], object] | None = None,
    *, fuel: int | None = None, memory_cap: int | None = None, engine: wasmtime.Engine = ENGINE,
) -> tuple[wasmtime.Store, dict]:
    """Instantiate with stub imports; optional fuel and memory cap from wasmtime itself."""
    store = wasmtime.Store(engine)
    if fuel is not None:
        store.set_fuel(fuel)
    if memory_cap is not None:
        store.set_limits(memory_size=memory_cap)
    linker = wasmtime.Linker(engine)
    for (mod, field), make in (imports or {}).items():
        linker.define(store, mod, field, make(store))
    mod_ = module(name) if engine is ENGINE else wasmtime.Module.from_file(
        engine, str(Path(__file__).resolve().parents[1] / "guests" / "wasm" / f"{name}.wasm"))
    return store, linker.instantiate(store, mod_).exports(store)


def fuel_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.consume_fuel = True
    return wasmtime.Engine(config)


def trap_code(exc: BaseException) -> object:
    return getattr(exc, "trap_code", None)


def test_spin_runs_until_fuel_is_gone() -> None:
    store, exports = plain_instance("hostile_spin", fuel=2_000_000, engine=fuel_engine())
    with pytest.raises(wasmtime.Trap) as info:
        exports["run"](store)
    assert trap_code(info.value) == wasmtime.TrapCode.OUT_OF_FUEL
    assert store.get_fuel() == 0


def test_recursion_overflows_the_wasm_stack() -> None:
    config = wasmtime.Config()
    config.max_wasm_stack = 256 * 1024
    store, exports = plain_instance("hostile_recursion", engine=wasmtime.Engine(config))
    with pytest.raises(wasmtime.Trap) as info:
        exports["run"](store)
    assert trap_code(info.value) == wasmtime.TrapCode.STACK_OVERFLOW


def test_membomb_takes_everything_the_cap_allows() -> None:
    cap = 4 * 1024 * 1024
    store, exports = plain_instance("hostile_membomb", memory_cap=cap)
    pages = exports["grow_all"](store)
    assert pages == cap // 65536  # grew right up to the cap, and no further
    memory = exports["memory"]
    assert memory.read(store, cap - 65536, cap - 65535) == bytearray(b"\xaa")  # touched


def test_membomb_run_never_returns() -> None:
    store, exports = plain_instance("hostile_membomb", fuel=3_000_000, memory_cap=1 << 20,
                                    engine=fuel_engine())
    with pytest.raises(wasmtime.Trap) as info:
        exports["run"](store)
    assert trap_code(info.value) == wasmtime.TrapCode.OUT_OF_FUEL
    assert exports["memory"].size(store) == 16  # 1 MiB cap: it kept asking, got nothing more


def test_tablebomb_takes_everything_the_cap_allows() -> None:
    store = wasmtime.Store(ENGINE)
    store.set_limits(table_elements=300_000)
    exports = wasmtime.Instance(store, module("hostile_tablebomb"), []).exports(store)
    size = exports["grow_all"](store)
    assert 300_000 - 65536 < size <= 300_000  # up to the cap in 64 Ki steps, no further


@pytest.mark.parametrize("name, limits, message", [
    ("hostile_big_memory", {"memory_size": 64 << 20}, "exceeds memory limits"),
    ("hostile_big_table", {"table_elements": 100_000}, "exceeds table limits"),
])
def test_declared_minimum_is_refused_at_instantiation(name: str, limits: dict,
                                                      message: str) -> None:
    store = wasmtime.Store(ENGINE)
    store.set_limits(**limits)
    with pytest.raises(wasmtime.WasmtimeError, match=message):
        wasmtime.Instance(store, module(name), [])


@pytest.mark.parametrize("export, code", [
    ("unreachable", wasmtime.TrapCode.UNREACHABLE),
    ("div_zero", wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO),
    ("overflow", wasmtime.TrapCode.INTEGER_OVERFLOW),
    ("oob_load", wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS),
    ("bad_indirect", wasmtime.TrapCode.INDIRECT_CALL_TO_NULL),
    ("bad_signature", wasmtime.TrapCode.BAD_SIGNATURE),
    ("bad_convert", wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER),
])
def test_traps_each_export_traps_its_own_way(export: str, code: wasmtime.TrapCode) -> None:
    store, exports = plain_instance("hostile_traps")
    with pytest.raises(wasmtime.Trap) as info:
        exports[export](store)
    assert trap_code(info.value) == code


def test_bad_alloc_modes() -> None:
    store, exports = plain_instance("hostile_bad_alloc")
    end = exports["memory"].data_len(store)
    answers = {}
    for mode in (0, 1, 2, 4):
        exports["set_mode"](store, mode)
        answers[mode] = exports["cg_alloc"](store, 10) & 0xFFFF_FFFF
    assert answers == {0: 0, 1: 0xFFFF_FFF0, 2: end - 4, 4: 1024}
    exports["set_mode"](store, 3)
    with pytest.raises(wasmtime.Trap):
        exports["cg_alloc"](store, 10)


def test_abi_mismatch_shapes() -> None:
    mod = module("hostile_abi_mismatch")
    exports = {e.name: e.type for e in mod.exports}
    assert "memory" not in exports
    shape = {name: ([str(p) for p in t.params], [str(r) for r in t.results])
             for name, t in exports.items()}
    assert shape["cg_alloc"] == (["i64"], ["i64"])
    assert shape["echo"] == (["i32", "i32"], ["i64"])  # right shape: reaches the cg_alloc check
    assert shape["short"] == (["i32", "i32"], ["i32"])
    assert shape["three"] == (["i32", "i32", "i32"], ["i64"])


def test_sleep_nap_is_a_real_poll() -> None:
    wasi_linker = wasmtime.Linker(ENGINE)
    wasi_linker.define_wasi()
    store = wasmtime.Store(ENGINE)
    store.set_wasi(wasmtime.WasiConfig())
    exports = wasi_linker.instantiate(store, module("hostile_sleep")).exports(store)
    assert exports["nap"](store, 1_000_000) == 0  # a 1 ms relative monotonic sleep


# Runs in a child process: it lowers RLIMIT_NOFILE, which must not touch pytest.
FD_EXHAUST_CHILD = """
import errno, gc, os, resource, sys, tempfile
import wasmtime
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
engine = wasmtime.Engine()
work = tempfile.mkdtemp()
wasi = wasmtime.WasiConfig()
wasi.argv = ("hostile_fd_exhaust", "/d")
wasi.stdout_file = os.path.join(work, "out")
wasi.preopen_dir(work, "/d")
store = wasmtime.Store(engine)
store.set_wasi(wasi)
linker = wasmtime.Linker(engine)
linker.define_wasi()
linker.instantiate(store, wasmtime.Module.from_file(engine, sys.argv[1])).exports(store)[
    "_start"](store)
try:
    os.close(os.open("/dev/null", os.O_RDONLY))
    print("host open while alive: ok")
except OSError as e:
    print("host open while alive:", errno.errorcode[e.errno])
del linker, store, wasi
gc.collect()
os.close(os.open("/dev/null", os.O_RDONLY))
print("host open after release: ok")
print(open(os.path.join(work, "out")).read(), end="")
"""


def test_fd_exhaust_starves_the_host_without_an_fd_cap() -> None:
    """wasmtime's native WASI has no per-instance fd cap: the guest takes every host fd."""
    wasm = Path(__file__).resolve().parents[1] / "guests" / "wasm" / "hostile_fd_exhaust.wasm"
    child = subprocess.run([sys.executable, "-c", FD_EXHAUST_CHILD, str(wasm)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[:2] == ["host open while alive: EMFILE", "host open after release: ok"]
    opened = re.fullmatch(r"opened (\d+), then: (.+)", lines[2])
    assert opened and 64 < int(opened[1]) < 128, lines[2]


def test_fd_exhaust_respects_max(tmp_path: Path) -> None:
    run = run_native("hostile_fd_exhaust", ("/d", "300"), dirs={"/d": tmp_path})
    assert (run.code, run.stdout) == (0, b"opened 300\n")


def test_no_memory_has_a_correct_abi_but_no_exported_memory() -> None:
    mod = module("hostile_no_memory")
    assert {e.name for e in mod.exports} == {"cg_alloc", "echo"}
    store, exports = plain_instance("hostile_no_memory")
    assert exports["cg_alloc"](store, 16) == 1024


def stub(params: list, results: list, fn) -> object:
    return lambda store: wasmtime.Func(store, wasmtime.FuncType(params, results), fn)


def test_denied_loop_ignores_every_failure() -> None:
    calls: collections.Counter[str] = collections.Counter()

    def fd_write(*_: int) -> int:
        calls["fd_write"] += 1
        return 63  # WASI EPERM, as ERRNO(EPERM) would answer

    def probe1(_: int) -> int:
        calls["probe1"] += 1
        return -63

    imports = {("wasi_snapshot_preview1", "fd_write"): stub([I32] * 4, [I32], fd_write),
               ("callgate", "probe1"): stub([I64], [I64], probe1)}
    store, exports = plain_instance("hostile_denied_loop", imports)
    assert exports["run_n"](store, 250) == 500
    assert calls == {"fd_write": 250, "probe1": 250}
    # With the gates allowing, the same loop counts no failures.
    allowed = {("wasi_snapshot_preview1", "fd_write"): stub([I32] * 4, [I32], lambda *_: 0),
               ("callgate", "probe1"): stub([I64], [I64], lambda a: a)}
    store, exports = plain_instance("hostile_denied_loop", allowed)
    assert exports["run_n"](store, 250) == 0


def test_denied_loop_run_is_endless() -> None:
    imports = {("wasi_snapshot_preview1", "fd_write"): stub([I32] * 4, [I32], lambda *_: 63),
               ("callgate", "probe1"): stub([I64], [I64], lambda _: -63)}
    store, exports = plain_instance("hostile_denied_loop", imports, fuel=200_000,
                                    engine=fuel_engine())
    with pytest.raises(wasmtime.Trap) as info:
        exports["run"](store)
    assert trap_code(info.value) == wasmtime.TrapCode.OUT_OF_FUEL


def unpack(packed: int) -> tuple[int, int]:
    packed &= (1 << 64) - 1
    return packed >> 32, packed & 0xFFFF_FFFF


def test_huge_output_claims_more_than_a_cap() -> None:
    imports = {("wasi_snapshot_preview1", "fd_write"): stub([I32] * 4, [I32], lambda *_: 0)}
    store, exports = plain_instance("hostile_huge_output", imports, memory_cap=32 << 20)
    ptr, length = unpack(exports["huge"](store, 0, 0))
    assert ptr == 0 and length == exports["memory"].data_len(store) >= 16 << 20
    ptr, length = unpack(exports["wild"](store, 0, 0))
    assert ptr + length > 1 << 32 and (ptr + length) % (1 << 32) == 0x10  # wraps in u32
    assert unpack(exports["wild_len"](store, 0, 0)) == (0, 0xFFFF_FFFF)


def test_huge_output_floods_stdout_and_stderr() -> None:
    written: collections.Counter[int] = collections.Counter()

    def fd_write(caller: wasmtime.Caller, fd: int, iovs: int, n: int, out: int) -> int:
        mem = caller["memory"]
        buf, length = (int.from_bytes(mem.read(caller, iovs + k, iovs + k + 4), "little")
                       for k in (0, 4))
        assert n == 1 and buf + length <= mem.data_len(caller)
        written[fd] += length
        return 0

    imports = {("wasi_snapshot_preview1", "fd_write"): lambda store: wasmtime.Func(
        store, wasmtime.FuncType([I32] * 4, [I32]), fd_write, access_caller=True)}
    store, exports = plain_instance("hostile_huge_output", imports, fuel=50_000,
                                    engine=fuel_engine())
    with pytest.raises(wasmtime.Trap):
        exports["flood"](store)
    assert written[1] >= 64 * 65536 and written[2] >= 64 * 65536


def test_foreign_import_names_only_non_gates() -> None:
    imports = {(i.module, i.name) for i in module("hostile_foreign_import").imports}
    assert imports == {("env", "system"), ("wasi_snapshot_preview1", "not_a_function"),
                       ("wasi_snapshot_preview1", "fd_write")}
    linker = wasmtime.Linker(ENGINE)
    linker.define_wasi()
    store = wasmtime.Store(ENGINE)
    store.set_wasi(wasmtime.WasiConfig())
    with pytest.raises(wasmtime.WasmtimeError, match="unknown import"):
        linker.instantiate(store, module("hostile_foreign_import"))


def test_bad_signature_is_refused_by_wasmtime_too() -> None:
    linker = wasmtime.Linker(ENGINE)
    linker.define_wasi()
    store = wasmtime.Store(ENGINE)
    store.set_wasi(wasmtime.WasiConfig())
    with pytest.raises(wasmtime.WasmtimeError, match="incompatible import type"):
        linker.instantiate(store, module("hostile_bad_signature"))


# --- hostile_bad_pointers on wasmtime's native WASI ----------------------------------

# Cases where wasmtime only touches part of the declared buffer (the first iovec
# with data, or just the bytes it writes), so it does not notice the bad part and
# succeeds. callgate checks the whole declared range and answers EFAULT.
WASMTIME_LENIENT = {
    "fd_pread:second_iov=END", "fd_pwrite:second_iov=END", "fd_read:second_iov=END",
    "fd_write:second_iov=END", "fd_prestat_dir_name:len=huge", "fd_readdir:buf_len=huge",
    "path_readlink:buf_len=huge",
}
ENOMEM, ENOTSOCK = 48, 57


def bad_pointer_instance(sandbox: Path) -> tuple[wasmtime.Store, dict]:
    wasi = wasmtime.WasiConfig()
    wasi.argv = ("hostile_bad_pointers",)
    wasi.env = [("K", "V")]
    wasi.preopen_dir(str(sandbox), "/sandbox")
    store = wasmtime.Store(ENGINE)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(ENGINE)
    linker.define_wasi()
    return store, linker.instantiate(store, module("hostile_bad_pointers")).exports(store)


def case_names(store: wasmtime.Store, exports: dict) -> list[str]:
    raw = bytes(exports["memory"].read(store, 40960, 49152)).split(b"\0")[0]
    return raw.decode().splitlines()


def test_bad_pointers_every_case_is_really_out_of_range(tmp_path: Path) -> None:
    """One fresh instance per case: wasmtime must trap or refuse every case but the lenient."""
    store, exports = bad_pointer_instance(tmp_path)
    names = case_names(store, exports)
    assert exports["case_count"](store) == len(names) >= 100
    assert len(set(names)) == len(names)
    outcome: dict[str, object] = {}
    for k, name in enumerate(names):
        store, exports = bad_pointer_instance(tmp_path)
        try:
            outcome[name] = exports["one_case"](store, k)
        except wasmtime.WasmtimeError as error:  # a host error, not a wasm trap
            message = str(error).lower()
            assert "pointer out of bounds" in message or "exceeds limit" in message, name
            outcome[name] = "trap"
    ok = {name for name, result in outcome.items() if result == 0}
    assert ok == WASMTIME_LENIENT
    for name, result in outcome.items():
        if name.startswith("sock_"):
            assert result == ENOTSOCK, name  # wasmtime checks the fd type first
        elif name not in ok and result != "trap":
            assert result == ENOMEM, (name, result)  # huge lengths: wasmtime tries to allocate
    # The host directory holds exactly what setup made (no stray files from bad calls).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "scratch.txt"]


def test_bad_pointers_setup_needs_a_preopen() -> None:
    run = run_native("hostile_bad_pointers", env={"K": "V"})
    assert run.code == 2
    assert run.stdout == b"setup fd_fdstat_get 8\n"  # EBADF: there is no fd 3
