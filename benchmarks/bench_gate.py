"""Gate calls: callgate's gated host calls and Python→wasm calls against wasmtime-py's own.

Usage: ``python benchmarks/bench_gate.py [N]`` prints these rows alone;
``benchmarks/run.py`` calls :func:`run` with everything else and writes ``RESULTS.md``.

All rows are measured in one process, side by side:

* wasm → host: the guest ``guests/wasm/gatecall.wasm`` (``probe``, 7 i64 args) or
  ``gatecall1.wasm`` (``probe1``, 1 arg) calls its import N times from a wasm loop
  (``run(N)``, one Python→wasm call per sample, spread over N). Host side:
  - callgate, constant allow: the policy allows the gate whatever its args, so the
    constant-action table answers and no filter runs;
  - callgate, arg-inspecting: the policy checks args 0, 1 and 5 (three 64-bit
    comparisons), so every call evaluates the compiled filter;
  - wasmtime-py ``Func``: the same import as a plain, *ungated* wasmtime-py host function.
  All host functions do the same work (return one of their args).
* Python → wasm: ``add(i64, i64) -> i64`` of ``guests/wasm/hello.wasm`` through
  ``Plugin.call_int`` and through wasmtime-py's ``Func.__call__``, from a Python loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import wasmtime
from common import (
    CALL_INT,
    FUNC_1,
    FUNC_7,
    FUNC_CALL,
    GATED_7,
    GATED_7_COMPILED,
    Row,
    loop,
    timed_row,
)

from callgate.gates.app import AppGates
from callgate.runtime import Plugin

HERE = Path(__file__).resolve().parent
GUESTS = HERE.parent / "guests" / "wasm"
GROUP_HOST = "wasm → host call"
GROUP_CALL = "Python → wasm call"
GATED_1 = "callgate gate, 1 arg, constant allow (cached)"
GATED_1_COMPILED = "callgate gate, 1 arg, arg-inspecting (compiled)"

ARG_POLICY = """
[gates]
default = "kill_process"
app_gates = ["probe", "probe1"]
[[gates.rules]]
names = ["probe"]
action = "allow"
args = [{index = 0, op = "lt", value = 0x100000000},
        {index = 1, op = "eq", value = 2},
        {index = 5, op = "le", value = 100}]
[[gates.rules]]
names = ["probe1"]
action = "allow"
args = [{index = 0, op = "lt", value = 0x100000000}]
"""
ALLOW_POLICY = """
[gates]
default = "kill_process"
app_gates = ["probe", "probe1"]
[[gates.rules]]
names = ["probe", "probe1"]
action = "allow"
"""


def _gates() -> AppGates:
    gates = AppGates()
    gates.add("probe", lambda call, a0, a1, a2, a3, a4, a5, a6: a6, params=("i64",) * 7,
              results=("i64",), number=0x1000, uses_memory=False)
    gates.add("probe1", lambda call, a0: a0, params=("i64",), results=("i64",),
              number=0x1001, uses_memory=False)
    return gates


def _gated(guest: str, policy: str, name: str, n: int, repeats: int, baseline: str,
           note: str) -> Row:
    plugin = Plugin(GUESTS / f"{guest}.wasm", gates=_gates(), policy=policy)
    row = timed_row(name, lambda count: plugin.call_int("run", count), inner=n,
                    repeats=repeats, group=GROUP_HOST, baseline=baseline, note=note)
    counts = plugin.counters
    plugin.close()
    gate = "probe" if guest == "gatecall" else "probe1"
    if counts[gate]["allow"] != (repeats + 1) * n:  # warm-up + samples, all allowed
        raise RuntimeError(f"{name}: expected every call allowed, got {counts[gate]}")
    return row


def _wasmtime_func(guest: str, arity: int, name: str, n: int, repeats: int) -> Row:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, str(GUESTS / f"{guest}.wasm"))
    ty = wasmtime.FuncType([wasmtime.ValType.i64()] * arity, [wasmtime.ValType.i64()])
    func = wasmtime.Func(store, ty, lambda *args: args[-1])
    run = wasmtime.Instance(store, module, [func]).exports(store)["run"]
    return timed_row(name, lambda count: run(store, count), inner=n, repeats=repeats,
                     group=GROUP_HOST, note="ungated: no filter, no policy")


def run(n: int) -> list[Row]:
    repeats = 15
    host_n = max(n, 100)
    rows = [
        _wasmtime_func("gatecall", 7, FUNC_7, host_n // 10 or 1, repeats),
        _gated("gatecall", ALLOW_POLICY, GATED_7, host_n, repeats, FUNC_7,
               "constant-action table, no filter run"),
        _gated("gatecall", ARG_POLICY, GATED_7_COMPILED, host_n, repeats, FUNC_7,
               "filter checks args 0, 1, 5 on every call"),
        _wasmtime_func("gatecall1", 1, FUNC_1, host_n // 10 or 1, repeats),
        _gated("gatecall1", ALLOW_POLICY, GATED_1, host_n, repeats, FUNC_1,
               "constant-action table, no filter run"),
        _gated("gatecall1", ARG_POLICY, GATED_1_COMPILED, host_n, repeats, FUNC_1,
               "filter checks arg 0 on every call"),
    ]
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, str(GUESTS / "hello.wasm"))
    add = wasmtime.Instance(store, module, []).exports(store)["add"]
    rows.append(timed_row(FUNC_CALL, loop(lambda: add(store, 1, 2)), inner=max(n // 10, 10),
                          repeats=repeats, group=GROUP_CALL, note="add(i64, i64) -> i64"))
    with Plugin(GUESTS / "hello.wasm") as plugin:
        call_int = plugin.call_int
        rows.append(timed_row(CALL_INT, loop(lambda: call_int("add", 1, 2)), inner=host_n,
                              repeats=repeats, group=GROUP_CALL, baseline=FUNC_CALL,
                              note="add(i64, i64) -> i64, unchecked C API"))
    return rows


N_DEFAULT = 100_000


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else N_DEFAULT):
        print(f"{row.name:50} {row.median_ns or 0:10.1f} ns  {row.note}")
