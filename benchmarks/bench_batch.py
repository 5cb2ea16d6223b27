"""Batch runs: one small job many times - in-process, in a new worker each, in the local
fork-server pool at 1 and 2 workers, and through the Ray engine on a local cluster.

Usage: ``python benchmarks/bench_batch.py [N]`` (or through ``benchmarks/run.py``).

The job is ``lines.wasm 10`` under the shipped default policy with a 10 s deadline: a fresh
instance per run, as a batch needs (no state may pass from one job to the next).

* ``in-process Plugin``: a new :class:`~callgate.runtime.Plugin` per run in this process
  (module compiled once, cached): the floor, with no process isolation at all;
* ``IsolatedPlugin, new worker per run``: spawn a worker, load, lock down, run, close - what
  isolating each job cost before the batch engines;
* ``local pool, W worker(s)``: ``callgate.batch.run`` on a started
  :class:`~callgate.batch.local.LocalEngine`; each job is a forked child, locked down, in
  its own scratch directory. Its row is the steady-state time per run (batch wall time /
  jobs), so W workers are compared by throughput;
* ``Ray engine``: the same on a local Ray cluster (``ray.init(num_cpus=2)``), 2 workers.

Per kind, also the job latency: p50 and p99 of one run's wall time (for the pools, as the
job's server measured it, fork to result: queueing is not latency). The note of each
throughput row gives runs/s and the CPU per run of every process involved (this one, the
workers, the jobs), which does not depend on how loaded the machine is.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import DEVNULL

from common import Row, unavailable

from callgate.batch import Job, run as run_batch
from callgate.batch.local import LocalEngine
from callgate.batch.sources import shipped_policy
from callgate.gates.spec import GuestExit
from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.isolation.isolated import IsolatedPlugin
from callgate.runtime import Limits, Plugin

GROUP = "Batch runs (lines.wasm 10, a fresh instance per run)"
ROOT = Path(__file__).resolve().parents[1]
LINES = ROOT / "guests" / "wasm" / "lines.wasm"
ARGV = ["lines", "10"]
LIMITS = Limits(timeout=10.0)
ISOLATED = "IsolatedPlugin, new worker per run: ms per run"


def _cpu_self_and_children() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of the children it has reaped (/proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _sequential(name: str, one: Callable[[], None], runs: int, repeats: int, note: str,
                baseline: str | None) -> tuple[Row, list[float]]:
    """Rows for a kind that runs one job at a time: ms per run, and every run's ms."""
    one()  # warm-up: compile, caches
    per_run: list[float] = []
    samples = []
    cpu0 = _cpu_self_and_children()
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(runs):
            t = time.perf_counter()
            one()
            per_run.append((time.perf_counter() - t) * 1000)
        samples.append((time.perf_counter() - start) * 1000 / runs)
    cpu = (_cpu_self_and_children() - cpu0) * 1000 / (runs * repeats)
    median = statistics.median(samples)
    row = Row(name, median, runs, repeats,
              f"{1000 / median:.1f} runs/s; CPU per run {cpu:.1f} ms (all processes); {note}",
              baseline, GROUP, "ms", tuple(samples))
    return row, per_run


def _latency_rows(label: str, per_run: list[float], note: str) -> list[Row]:
    if len(per_run) < 2:
        return []
    cuts = statistics.quantiles(per_run, n=100, method="inclusive")
    return [Row(f"{label}: job latency p50", statistics.median(per_run), len(per_run), 1,
                note, None, GROUP, "ms"),
            Row(f"{label}: job latency p99", cuts[98], len(per_run), 1, note, None, GROUP,
                "ms")]


def _in_process(runs: int, repeats: int) -> list[Row]:
    policy = shipped_policy("default")
    data = LINES.read_bytes()

    def one() -> None:
        out = bytearray()
        config = WasiConfig(args=ARGV, stdout=out, stderr=bytearray())
        with Plugin(data, policy=policy, limits=LIMITS,
                    providers=[WasiProvider(config)]) as plugin, contextlib.suppress(GuestExit):
            plugin.call_int("_start")
        assert out.startswith(b"line 1\n")

    row, per_run = _sequential("in-process Plugin, new instance per run: ms per run", one,
                               runs * 10, repeats, "no process isolation", None)
    return [row, *_latency_rows("in-process Plugin", per_run, "")]


def _isolated(runs: int, repeats: int) -> list[Row]:
    policy = shipped_policy("default")

    def one() -> None:
        config = WasiConfig(args=ARGV, stdin="inherit", stdout="inherit", stderr="inherit")
        with IsolatedPlugin(str(LINES), policy=policy, limits=LIMITS, wasi=config,
                            stdio=(DEVNULL, DEVNULL, DEVNULL)) as plugin, \
                contextlib.suppress(GuestExit):
            plugin.call_int("_start")

    row, per_run = _sequential(ISOLATED, one, runs, repeats,
                               "spawn python, load, lock down, run, close", None)
    return [row, *_latency_rows("IsolatedPlugin", per_run, "")]


def _jobs(count: int, tag: str) -> list[Job]:
    return [Job(str(LINES), id=f"{tag}{i}", argv=tuple(ARGV)) for i in range(count)]


def _pool(label: str, engine: object, pids: Callable[[], list[int]], jobs: int, repeats: int,
          baseline: str | None, note: str) -> list[Row]:
    """Throughput and latency rows of an engine already started."""
    list(run_batch(_jobs(4, "warm"), engine=engine, policy="default"))  # type: ignore[arg-type]
    samples, walls = [], []
    cpu0 = _cpu_self_and_children() + sum(_proc_cpu(pid) for pid in pids())
    for r in range(repeats):
        start = time.perf_counter()
        results = list(run_batch(_jobs(jobs, f"r{r}-"), engine=engine,  # type: ignore[arg-type]
                                 policy="default"))
        samples.append((time.perf_counter() - start) * 1000 / jobs)
        bad = [res for res in results if res["status"] != "ok"]
        if bad:
            raise AssertionError(f"{label}: a job did not end ok: {bad[0]}")
        walls += [res["time"]["wall_s"] * 1000 for res in results]
    cpu = (_cpu_self_and_children() + sum(_proc_cpu(pid) for pid in pids()) - cpu0) \
        * 1000 / (jobs * repeats)
    median = statistics.median(samples)
    row = Row(f"{label}: ms per run (throughput)", median, jobs, repeats,
              f"{1000 / median:.1f} runs/s; CPU per run {cpu:.1f} ms (all processes); {note}",
              baseline, GROUP, "ms", tuple(samples))
    return [row, *_latency_rows(label, walls, "the job's own time, fork to result")]


def _local(workers: int, jobs: int, repeats: int) -> list[Row]:
    with LocalEngine(workers) as engine:
        return _pool(f"local pool, {workers} worker{'s' if workers > 1 else ''}", engine,
                     engine.worker_pids, jobs, repeats, ISOLATED,
                     "fork server per worker, a forked locked-down child per job")


def _ray(jobs: int, repeats: int, quick: bool) -> list[Row]:
    name = "Ray engine, local cluster, 2 workers: ms per run (throughput)"
    if quick:
        return [unavailable(name, "skipped by --quick (starting a Ray cluster takes seconds)",
                            group=GROUP, baseline=ISOLATED, unit="ms")]
    try:
        import ray
    except ImportError:
        return [unavailable(name, "Ray is not installed (pip install 'callgate[ray]')",
                            group=GROUP, baseline=ISOLATED, unit="ms")]
    from callgate.batch.ray_engine import RayEngine

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with RayEngine(2) as engine:
            return _pool("Ray engine, local cluster, 2 workers", engine, lambda: [], jobs,
                         repeats, ISOLATED, "one actor running the local pool; CPU excludes "
                         "the actor's servers and jobs (not children of this process)")
    finally:
        ray.shutdown()


def run(n: int) -> list[Row]:
    """``n`` // 100 pool jobs per sample, a twentieth as many isolated runs (each takes
    a fifth of a second); ``--quick`` (n < 10,000) runs a token batch and no Ray."""
    quick = n < 10_000
    jobs = 10 if quick else n // 100
    repeats = 2 if quick else 3
    isolated_runs = 2 if quick else max(3, jobs // 20)
    rows = _in_process(isolated_runs, repeats)
    rows += _isolated(isolated_runs, repeats)
    rows += _local(1, jobs, repeats)
    rows += _local(2, jobs, repeats)
    rows += _ray(jobs, repeats, quick)
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        value = "n/a" if row.median_ns is None else f"{row.median_ns:10.2f} {row.unit}"
        print(f"{row.name:66} {value}  {row.note}")
