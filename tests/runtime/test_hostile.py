"""The hostile corpus, 100 runs of each guest in this one process.

Every run must end the way ``guests/README.md`` documents (the typed error, or
the bounded result), the host must keep working, and afterwards the process's
open fd count must be back where it started and its RSS must have grown by less
than :data:`RSS_BOUND` (each run loads, instantiates, runs and closes a plugin,
so leaked stores, callbacks or fds would pile up 100-fold).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require
from reentry_host import Reenter
from rt_helpers import gate_policy, guest, wat

from callgate.gates.app import AppGates
from callgate.gates.errors import (
    AbiError,
    DeadlineExceeded,
    FuelExhausted,
    GateViolation,
    GuestAllocError,
    GuestTrap,
    ImportRefused,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PluginKilled,
    PluginLoadError,
    PluginPoisoned,
    StackOverflow,
    TableLimitExceeded,
)
from callgate.gates.memory import GuestMemoryError
from callgate.gates.spec import GuestExit
from callgate.runtime import Limits, Plugin
from callgate.runtime.loading import default_providers

RUNS = 100
# RSS may grow by at most this much over 100 runs of one guest (allocator caches,
# wasmtime's per-engine code memory warming up); a leak of one store per run
# (64 KiB+ of linear memory, the instance, the callbacks) would exceed it.
RSS_BOUND = 8 * 1024 * 1024
PAGE = 65536
HAVE_WASI = bool(default_providers())


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def probe1_gates() -> AppGates:
    gates = AppGates()
    gates.add("probe1", lambda call, a: a, params=("i64",), results=("i64",), number=0x1001,
              uses_memory=False)
    return gates


@dataclass
class Case:
    name: str
    run: Callable[..., None]  # one run; asserts its own documented outcome
    needs_wasi: bool = False
    needs_dir: bool = False  # run(tmp_dir): a fresh host directory to preopen


def expect(error: type[BaseException], action: Callable[[], object]) -> None:
    with pytest.raises(error):
        action()


def spin() -> None:
    with Plugin(guest("hostile_spin"), limits=Limits(fuel=200_000)) as p:
        expect(FuelExhausted, lambda: p.call_int("run"))


def recursion() -> None:
    with Plugin(guest("hostile_recursion"), limits=Limits(stack=128 * 1024)) as p:
        expect(StackOverflow, lambda: p.call_int("run"))


def membomb() -> None:
    cap = 2 * 1024 * 1024
    with Plugin(guest("hostile_membomb"), limits=Limits(memory=cap, fuel=2_000_000)) as p:
        assert p.call_int("grow_all") <= cap // PAGE
        expect(FuelExhausted, lambda: p.call_int("run"))
        memory = p.memory()
        assert memory is not None and memory.size <= cap


def tablebomb() -> None:
    with Plugin(guest("hostile_tablebomb"),
                limits=Limits(table_elements=10_000, fuel=2_000_000)) as p:
        assert p.call_int("grow_all") <= 10_000
        expect(FuelExhausted, lambda: p.call_int("run"))


def big_memory() -> None:
    expect(MemoryLimitExceeded, lambda: Plugin(guest("hostile_big_memory")))


def big_table() -> None:
    expect(TableLimitExceeded, lambda: Plugin(guest("hostile_big_table")))


def traps() -> None:
    with Plugin(guest("hostile_traps")) as p:
        for name in ("unreachable", "div_zero", "overflow", "oob_load", "bad_indirect",
                     "bad_signature", "bad_convert"):
            expect(GuestTrap, lambda name=name: p.call_int(name))


def abi_mismatch() -> None:
    with Plugin(guest("hostile_abi_mismatch")) as p:
        for name in ("echo", "short", "three"):
            expect(AbiError, lambda name=name: p.call(name, b"data"))
        assert p.call_int("add", 2, 3) == 5


def bad_alloc() -> None:
    with Plugin(guest("hostile_bad_alloc")) as p:
        outcomes = {0: GuestAllocError, 1: GuestMemoryError, 2: GuestMemoryError, 3: GuestTrap}
        for mode, error in outcomes.items():
            p.call_int("set_mode", mode)
            expect(error, lambda: p.call("echo", b"more than four"))
        p.call_int("set_mode", 4)
        assert p.call("echo", b"honest") == b"honest"


def foreign_import() -> None:
    with pytest.raises(ImportRefused) as info:
        Plugin(guest("hostile_foreign_import"), providers=default_providers())
    assert [line.split(":")[0] for line in info.value.problems] == \
        ["import #1 env.system", "import #2 wasi_snapshot_preview1.not_a_function"]


def bad_signature() -> None:
    with pytest.raises(ImportRefused) as info:
        Plugin(guest("hostile_bad_signature"), providers=default_providers())
    assert len(info.value.problems) == 2
    assert all("declared" in line for line in info.value.problems)


def denied_loop_errno() -> None:
    written = bytearray()
    with Plugin(guest("hostile_denied_loop"), providers=_wasi(stdout=written),
                gates=probe1_gates(), policy=gate_policy("errno(EPERM)"),
                limits=Limits(fuel=20_000)) as p:  # every denial is audited: keep runs short
        assert p.call_int("run_n", 10) == 20
        expect(FuelExhausted, lambda: p.call_int("run"))
        assert p.counters["fd_write"]["errno"] == p.counters["probe1"]["errno"] > 10
    assert written == b""  # no denied write reached stdout


def denied_loop_kill() -> None:
    with Plugin(guest("hostile_denied_loop"), providers=default_providers(),
                gates=probe1_gates(), policy=gate_policy("kill_thread")) as p:
        expect(GateViolation, lambda: p.call_int("run"))
    with Plugin(guest("hostile_denied_loop"), providers=default_providers(),
                gates=probe1_gates(), policy=gate_policy("kill_process")) as p:
        expect(PluginKilled, lambda: p.call_int("run"))
        expect(PluginPoisoned, lambda: p.call_int("run_n", 1))


def huge_output() -> None:
    with Plugin(guest("hostile_huge_output"), providers=default_providers(),
                limits=Limits(output=64 * 1024, memory=1024 * 1024)) as p:
        expect(OutputLimitExceeded, lambda: p.call("huge", b""))
        expect(GuestMemoryError, lambda: p.call("wild", b""))
    with Plugin(guest("hostile_huge_output"), providers=default_providers(),
                limits=Limits(output=None, memory=1024 * 1024)) as p:
        expect(GuestMemoryError, lambda: p.call("wild_len", b""))


def _wasi(**config: object) -> list:
    from callgate.gates.wasi import WasiConfig, WasiProvider
    return [WasiProvider(WasiConfig(**config))]


def run_command(plugin: Plugin) -> int:
    """Run a WASI command's ``_start``: its exit code (returning from main is 0)."""
    try:
        plugin.call_int("_start")
    except GuestExit as exc:
        return exc.code
    return 0


def huge_output_flood() -> None:
    written = bytearray()
    with Plugin(guest("hostile_huge_output"), providers=_wasi(stdout=written, stderr=written),
                limits=Limits(output=256 * 1024, fuel=10**9)) as p:
        expect(OutputLimitExceeded, lambda: p.call_int("flood"))
    assert len(written) <= 256 * 1024  # refused before writing past the cap


def sleep() -> None:
    with Plugin(guest("hostile_sleep"), providers=_wasi(), limits=Limits(timeout=0.01)) as p:
        expect(DeadlineExceeded, lambda: p.call_int("run"))


def bad_pointers(tmp: Path) -> None:
    from callgate.gates.wasi import Preopen
    out = bytearray()
    providers = _wasi(args=["bad"], env={"K": "V"}, preopens=[Preopen(tmp, "/sandbox")],
                      stdout=out)
    with Plugin(guest("hostile_bad_pointers"), providers=providers) as p:
        code = run_command(p)
    lines = out.decode().splitlines()
    assert lines[-1] == "total 113 efault 113", [x for x in lines if not x.endswith(" 21")]
    assert code == 0


def fd_exhaust(tmp: Path) -> None:
    from callgate.gates.wasi import Preopen
    out = bytearray()
    providers = _wasi(args=["fd_exhaust", "/d"], preopens=[Preopen(tmp, "/d")], stdout=out,
                      max_fds=32)
    with Plugin(guest("hostile_fd_exhaust"), providers=providers) as p:
        assert run_command(p) == 0
    assert out.decode().startswith("opened 2"), out  # 32 minus stdio and the preopen


def escape_procfs() -> None:
    from callgate.gates.wasi import Preopen
    out = bytearray()
    providers = _wasi(args=["escape_procfs", "proc/self/mem", "proc/self/maps", "sys/kernel"],
                      preopens=[Preopen("/", "/", readonly=True)], stdout=out)
    with Plugin(guest("escape_procfs"), providers=providers) as p:
        assert run_command(p) == 0
    assert out.decode().split() == ["open", "proc/self/mem", "2", "open", "proc/self/maps",
                                    "2", "open", "sys/kernel", "2"]  # EACCES each time


def reentrant_fuel() -> None:
    host = Reenter(("burn", 20_000))
    with host.load(Limits(fuel=500_000)) as p:
        expect(FuelExhausted, lambda: p.call_int("run"))
    assert 1 <= host.calls < 200


def reentrant_kill() -> None:
    policy = gate_policy("allow", 'names = ["doomed"]\naction = "kill_process"',
                         app_gates=("reenter", "doomed", "after"))
    host = Reenter(("killme",))
    with host.load(Limits(), policy) as p:
        expect(PluginKilled, lambda: p.call_int("run_then_after"))
    assert not host.after_ran


NO_MEMORY_EXPORT = wat("""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory 1))
""")


def no_memory_export() -> None:
    expect(PluginLoadError, lambda: Plugin(NO_MEMORY_EXPORT))


IOVEC_FLOOD = wat("""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (param $n i32) (result i32)
    (call $w (i32.const 1) (i32.const 0) (local.get $n) (i32.const 65532))))
""")


def iovec_flood() -> None:
    with Plugin(IOVEC_FLOOD, providers=_wasi(stdout=bytearray())) as p:
        assert p.call_int("run", 1025) == 28  # EINVAL: more than IOV_MAX iovecs
        assert p.call_int("run", 8191) == 28


CASES = [
    Case("spin", spin),
    Case("recursion", recursion),
    Case("membomb", membomb),
    Case("tablebomb", tablebomb),
    Case("big_memory", big_memory),
    Case("big_table", big_table),
    Case("traps", traps),
    Case("abi_mismatch", abi_mismatch),
    Case("bad_alloc", bad_alloc),
    Case("foreign_import", foreign_import, needs_wasi=True),
    Case("bad_signature", bad_signature, needs_wasi=True),
    Case("denied_loop_errno", denied_loop_errno, needs_wasi=True),
    Case("denied_loop_kill", denied_loop_kill, needs_wasi=True),
    Case("huge_output", huge_output, needs_wasi=True),
    Case("huge_output_flood", huge_output_flood, needs_wasi=True),
    Case("sleep", sleep, needs_wasi=True),
    Case("bad_pointers", bad_pointers, needs_wasi=True, needs_dir=True),
    Case("fd_exhaust", fd_exhaust, needs_wasi=True, needs_dir=True),
    Case("escape_procfs", escape_procfs, needs_wasi=True),
    Case("reentrant_fuel", reentrant_fuel),
    Case("reentrant_kill", reentrant_kill),
    Case("no_memory_export", no_memory_export, needs_wasi=True),
    Case("iovec_flood", iovec_flood, needs_wasi=True),
]


@pytest.fixture
def quiet_audit():
    """pytest keeps every captured log record in memory, which would swamp the RSS check;
    the denials still produce records (AuditRecord, JSON) — only the logger is muted."""
    audit_logger = logging.getLogger("callgate.audit")
    level = audit_logger.level
    audit_logger.setLevel(logging.CRITICAL + 1)
    yield
    audit_logger.setLevel(level)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_guest_100_runs(case: Case, quiet_audit: None, tmp_path: Path) -> None:
    if case.needs_wasi:
        require(HAVE_WASI, "the WASI preview1 gate provider (callgate.gates.wasi)")
    runs = iter(range(RUNS + 1))

    def once() -> None:
        if not case.needs_dir:
            return case.run()
        directory = tmp_path / f"run{next(runs)}"
        directory.mkdir()
        return case.run(directory)

    once()  # warm-up: compile caches, engine code memory, lazy imports
    gc.collect()
    fds, start = fd_count(), rss()
    for _ in range(RUNS):
        once()
    gc.collect()
    assert fd_count() == fds
    grown = rss() - start
    assert grown < RSS_BOUND, f"RSS grew by {grown} bytes over {RUNS} runs"
    with Plugin(guest("hello")) as other:  # the host still works
        assert other.call_int("add", 1, 1) == 2
