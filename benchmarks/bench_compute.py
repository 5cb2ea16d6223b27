"""Compute speed: a guest that never calls out, under callgate and under plain wasmtime-py.

Usage: ``python benchmarks/bench_compute.py [N]`` (or through ``benchmarks/run.py``).

``guests/wasm/compute.wasm`` (no imports) has three kernels, each called once per sample
with a fixed number of rounds: ``sieve`` (tight loops of byte stores), ``crc`` (a CRC-32
a byte at a time, each turn waiting on a table load) and ``interp`` (a stack-machine
interpreter's dispatch loop). Each kernel runs on five set-ups, one module each:

* **wasmtime-py, default engine**: ``wasmtime.Engine()``, ``Func.__call__`` - the baseline;
* **wasmtime-py, epoch interruption on**: the same with ``Config.epoch_interruption`` (and
  a deadline that never comes): what the mechanism behind a timeout costs in wasmtime;
* **callgate, no limits**: ``Plugin(...)`` without ``timeout`` or ``fuel``: an engine with
  neither check compiled in (issue 13: within 5% of the baseline);
* **callgate, Limits(timeout=600)**: epoch interruption on (the deadline never fires);
* **callgate, Limits(fuel=2**63)**: fuel metering on (it never runs out).

Only the call is timed (modules compiled and instances made beforehand), the five
set-ups **interleaved** sample by sample so that load from other processes falls on all
of them alike, and every set-up's result is checked against the baseline's. The call
overhead (about 1 µs for callgate, 20 µs for ``Func.__call__``) is negligible next to a
sample (tens of milliseconds). CPU time is this process's, and the guest runs on the
calling thread, so on a busy machine it is the better estimate of the code's speed.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime
from common import COMPUTE_NO_LIMITS, COMPUTE_PLAIN, Row, gc_paused

GROUP = "Compute-bound guest, no gate calls (one call each)"
WASM = Path(__file__).resolve().parents[1] / "guests" / "wasm" / "compute.wasm"
# Rounds per call (full run, --quick): about 30-60 ms per call on the reference machine.
KERNELS = {"sieve": (32, 1), "crc": (250, 2), "interp": (14000, 20)}
TIMEOUT = 600.0
FUEL = 1 << 63
BASELINE = COMPUTE_PLAIN
NO_LIMITS = COMPUTE_NO_LIMITS
SETUPS = (BASELINE, "wasmtime-py, epoch interruption on", NO_LIMITS,
          f"callgate, Limits(timeout={TIMEOUT:g}) (epoch interruption)",
          "callgate, Limits(fuel=2**63) (fuel metering)")
NOTES = {
    BASELINE: "Func.__call__ on wasmtime.Engine()",
    SETUPS[1]: "Config.epoch_interruption, deadline never reached",
    NO_LIMITS: "Plugin.call_int; the engine compiles neither check",
    SETUPS[3]: "the deadline never fires",
    SETUPS[4]: "the fuel never runs out",
}

Call = Callable[[int], int]


def row_name(kernel: str, setup: str) -> str:
    return f"{kernel}: {setup}"


def _wasmtime(kernel: str, data: bytes, *, epoch: bool) -> Call:
    config = wasmtime.Config()
    config.epoch_interruption = epoch
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    if epoch:
        store.set_epoch_deadline(1 << 48)  # 2**48 ticks: never, as callgate's no-deadline
    instance = wasmtime.Instance(store, wasmtime.Module(engine, data), [])
    func = instance.exports(store)[kernel]
    assert isinstance(func, wasmtime.Func)

    def call(rounds: int) -> int:
        result = func(store, rounds)
        assert isinstance(result, int)
        return result

    return call


def setups(kernel: str, data: bytes) -> tuple[dict[str, Call], list[object]]:
    """The five ways to call ``kernel``, and the plugins to close afterwards."""
    from callgate.runtime import Limits, Plugin

    plugins = [Plugin(data, providers=[], limits=limits, compile_cache=False)
               for limits in (Limits(), Limits(timeout=TIMEOUT), Limits(fuel=FUEL))]
    if plugins[0]._shared.key.epoch or plugins[0]._shared.key.fuel:
        raise AssertionError(f"a plugin without limits got {plugins[0]._shared.key}")

    def via(plugin: Plugin) -> Call:
        def call(rounds: int) -> int:
            result = plugin.call_int(kernel, rounds)
            assert isinstance(result, int)
            return result
        return call

    calls = {BASELINE: _wasmtime(kernel, data, epoch=False),
             SETUPS[1]: _wasmtime(kernel, data, epoch=True),
             NO_LIMITS: via(plugins[0]), SETUPS[3]: via(plugins[1]), SETUPS[4]: via(plugins[2])}
    return calls, list(plugins)


def interleaved(calls: dict[str, Call], rounds: int, repeats: int
                ) -> dict[str, tuple[list[float], list[float]]]:
    """Per set-up: wall and CPU ms of each of ``repeats`` calls, the set-ups taking turns."""
    expected = calls[BASELINE](rounds)
    for name, call in calls.items():  # warm-up, and the same answer everywhere
        got = call(rounds)
        if got != expected:
            raise AssertionError(f"{name} computed {got}, the baseline {expected}")
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in calls}
    with gc_paused():
        for _ in range(repeats):
            for name, call in calls.items():
                cpu = time.process_time_ns()
                start = time.perf_counter_ns()
                call(rounds)
                end = time.perf_counter_ns()
                out[name][0].append((end - start) / 1e6)
                out[name][1].append((time.process_time_ns() - cpu) / 1e6)
    return out


def run(n: int) -> list[Row]:
    """Every kernel on every set-up; ``n`` below 10 000 (the smoke test) shrinks the rounds."""
    full = n >= 10_000
    repeats = 11 if full else 3
    data = WASM.read_bytes()
    rows = []
    for kernel, (big, small) in KERNELS.items():
        rounds = big if full else small
        calls, plugins = setups(kernel, data)
        try:
            times = interleaved(calls, rounds, repeats)
        finally:
            for plugin in plugins:
                plugin.close()  # type: ignore[attr-defined]
        for setup in SETUPS:
            wall, cpu = times[setup]
            rows.append(Row(row_name(kernel, setup), statistics.median(wall), 1, repeats,
                            f"{kernel}({rounds}); {NOTES[setup]}",
                            None if setup == BASELINE else row_name(kernel, BASELINE),
                            GROUP, "ms", tuple(wall), statistics.median(cpu)))
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:75} {row.median_ns or 0:9.2f} {row.unit} "
              f"(CPU {row.cpu_ns or 0:9.2f})  {row.note}")
