"""Timing helpers and the one row type every benchmark module returns.

Every ``bench_*.py`` module exposes ``run(n: int) -> list[Row]``; ``run.py`` composes
them into one table. ``n`` scales how much work a module does (operations per sample);
the modules choose their own repeat counts from it.

How a time is taken (:func:`measure`):

* warm-up first (caches, JIT tiers, lazily built wrappers), then ``repeats`` samples;
* each sample times ``inner`` operations with :func:`time.perf_counter_ns` and divides,
  so the timer's own cost (~50 ns) is spread over many operations;
* the garbage collector is off while timing (a collection landing in one sample is
  noise, not the cost of the thing measured) and back on between benchmarks;
* the reported figure is the median of the samples, so a sample hit by the other
  processes on this shared machine does not move it;
* each sample's CPU time (:func:`time.process_time_ns`: this process, user + system) is
  kept too. On an oversubscribed machine wall time includes waiting for a core; CPU time
  does not, so it is the better estimate of the cost itself. (It misses work done in
  other processes, e.g. a worker's.)
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# Names of the peer rows other modules take ratios against (``Row.baseline``), written
# once here so a module measuring them and a module comparing with them agree.
FUNC_1 = "wasmtime-py Func, 1 arg (ungated)"
FUNC_7 = "wasmtime-py Func, 7 args (ungated)"
FUNC_CALL = "wasmtime-py Func.__call__, integer"
# The rows issue 7's goals are stated against (see run.py's GOALS).
GATED_7 = "callgate gate, 7 args, constant allow (cached)"
GATED_7_COMPILED = "callgate gate, 7 args, arg-inspecting (compiled)"
CALL_INT = "callgate Plugin.call_int, integer"
HOST_FN_7 = "Extism host_fn, 7 args"
# The rows issue 13's goals are stated against. bench_bigmodule.py prefixes each with its
# module ("yosys.wasm, 69 MB: "); bench_compute.py's rows are "KERNEL: " + a set-up.
BIG_WASMTIME_COMPILE = "wasmtime-py: compile, default engine (in process)"
BIG_COLD = "callgate run, cold (empty compile cache)"
BIG_NATIVE_WARM = "wasmtime-py native WASI, serialized module (child process)"
BIG_WARM = "callgate run, warm (compile cache hit)"
BIG_REFUSED_PLUGIN = "unknown import: Plugin() refuses it, in process"
BIG_REFUSED_CLI = "unknown import: callgate run refuses it"
COMPUTE_PLAIN = "wasmtime-py, default engine"
COMPUTE_NO_LIMITS = "callgate, no limits (no timeout, no fuel)"
# The rows issue 14's policy-size and start-up goals are stated against.
FILTER_1_RULE = "1 rule on one gate: gate filter (search)"
FILTER_100_RULES = "100 rules on one gate: gate filter (search)"
CALL_1_RULE = "1 rule on one gate: gated call (search, {path} gate path)"
CALL_100_RULES = "100 rules on one gate: gated call (search, {path} gate path)"
WARM_START = "callgate Plugin start + close, warm: cat.wasm (31 KB), default.toml"


@dataclass(frozen=True)
class Row:
    """One measured quantity.

    ``median_ns`` is the median per operation, in nanoseconds unless ``unit`` names
    another unit (``"insns"`` for path lengths, ``"ms"`` for compile times). ``None``
    means the row could not be measured on this machine and ``note`` says why
    ("not available: ..."), so a missing peer or subsystem is reported, never faked.
    ``n`` is operations per sample, ``repeats`` the number of samples.
    ``baseline`` names another row of the same run; the table shows how many times
    faster (or slower) this row is than that one.
    """

    name: str
    median_ns: float | None
    n: int
    repeats: int
    note: str = ""
    baseline: str | None = None
    group: str = ""
    unit: str = "ns"
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)
    cpu_ns: float | None = None  # median CPU time per operation, same unit as median_ns

    @property
    def available(self) -> bool:
        return self.median_ns is not None


def unavailable(name: str, why: str, *, group: str = "", baseline: str | None = None,
                unit: str = "ns") -> Row:
    """A row for something this machine cannot measure, saying why."""
    return Row(name, None, 0, 0, f"not available: {why}", baseline, group, unit)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic GC out of the timed region; restore its previous state after."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def sample(
    batch: Callable[[int], object], *, inner: int, repeats: int, warmup: int = 1
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-operation (wall, CPU) ns of ``repeats`` timed ``batch(inner)`` calls, after warm-up."""
    if inner < 1 or repeats < 1:
        raise ValueError(f"need inner >= 1 and repeats >= 1, got {inner} and {repeats}")
    for _ in range(warmup):
        batch(inner)
    wall, cpu = [], []
    with gc_paused():
        for _ in range(repeats):
            start_cpu = time.process_time_ns()
            start = time.perf_counter_ns()
            batch(inner)
            end = time.perf_counter_ns()
            cpu.append((time.process_time_ns() - start_cpu) / inner)
            wall.append((end - start) / inner)
    return tuple(wall), tuple(cpu)


def measure(
    batch: Callable[[int], object], *, inner: int, repeats: int, warmup: int = 1
) -> tuple[float, tuple[float, ...]]:
    """Median wall ns per operation of ``batch(inner)``, which performs ``inner`` operations.

    ``batch`` is called ``warmup`` times untimed first. Returns the median and the
    per-operation samples.
    """
    wall, _ = sample(batch, inner=inner, repeats=repeats, warmup=warmup)
    return statistics.median(wall), wall


def loop(fn: Callable[[], object]) -> Callable[[int], None]:
    """A batch that calls ``fn()`` ``count`` times from a Python loop.

    The loop's own cost (about 15-30 ns per turn here) is included; :func:`loop_overhead_ns`
    measures it so a report can say how much of a small number it is.
    """

    def batch(count: int) -> None:
        for _ in range(count):
            fn()

    return batch


def loop_overhead_ns(inner: int = 100_000, repeats: int = 7) -> float:
    """What :func:`loop` costs per turn around a call of a function that does nothing."""
    return measure(loop(_nothing), inner=inner, repeats=repeats)[0]


def _nothing() -> None:
    return None


def timed_row(
    name: str,
    batch: Callable[[int], object],
    *,
    inner: int,
    repeats: int,
    warmup: int = 1,
    note: str = "",
    baseline: str | None = None,
    group: str = "",
) -> Row:
    """Measure ``batch`` (see :func:`sample`) into a :class:`Row` with wall and CPU medians."""
    wall, cpu = sample(batch, inner=inner, repeats=repeats, warmup=warmup)
    return Row(name, statistics.median(wall), inner, repeats, note, baseline, group, "ns", wall,
               statistics.median(cpu))


def in_ms(row: Row, *, cpu: bool = True) -> Row:
    """The same row in milliseconds (for whole runs); ``cpu=False`` drops the CPU figure."""
    scale = 1e6
    return dataclasses.replace(
        row, median_ns=row.median_ns / scale, unit="ms",
        samples=tuple(s / scale for s in row.samples),
        cpu_ns=row.cpu_ns / scale if cpu and row.cpu_ns is not None else None)


def ratio(row: Row, base: Row) -> float | None:
    """How many times faster ``row`` is than ``base`` (base time / row time); None if unknown."""
    if row.median_ns is None or base.median_ns is None or row.median_ns <= 0:
        return None
    return base.median_ns / row.median_ns
