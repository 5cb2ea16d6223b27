"""Deadlines under a busy host: when does ``Limits.timeout`` end a call? (issue 12, item 7)

Usage: ``python benchmarks/bench_deadline.py [--timeout S] [--repeats R] [--paths ...]``

A call gets a deadline of ``--timeout`` seconds (default 1) and a guest that would run
forever; each scenario adds what the host's other Python threads do meanwhile:

* ``quiet``: nothing (``hostile_spin``: a wasm loop that never calls out);
* ``busy3``: three Python threads spinning in pure-Python loops;
* ``gates``: the guest is ``hostile_denied_loop`` instead, a loop of gate calls the policy
  denies (``errno``), so the calling thread takes the GIL for every call;
* ``gates+busy3``: both;
* ``gil-hog``: one host thread holds the GIL in a single C call (``sum(range(k))``,
  calibrated to 3× the timeout) that never lets another Python thread run.

Two figures per scenario, each the median of ``--repeats`` calls, as a multiple of the
timeout: **returned**, the wall time until the call came back to Python, and **guest
ran**, the calling thread's CPU time during the call: the guest spins on that thread, so
this is when the deadline actually stopped it. Under ``gil-hog`` they differ on purpose:
a stopped guest still needs the GIL to return to Python, which nothing can give it
before the hog's C call ends, but the CPU it burns until the deadline fires is the
ticker's doing.

Each path runs in its own interpreter: ``native`` (the default when the native core is
built), ``python`` (``CALLGATE_PURE_PYTHON=1``: the Python twin of the ticker). To
measure another checkout (say the commit before the native ticker), run this script
with ``PYTHONPATH`` pointing at it and ``--paths here``. Not part of ``run.py``: a sample
takes seconds, and the paths need separate processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callgate.runtime import Plugin

ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "guests" / "wasm"
SCENARIOS = ("quiet", "busy3", "gates", "gates+busy3", "gil-hog")


@contextmanager
def busy_threads(count: int) -> Iterator[None]:
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _calibrate_hog(seconds: float) -> int:
    """A ``k`` for which ``sum(range(k))`` (one C call: it never drops the GIL) takes
    about ``seconds``."""
    k = 1_000_000
    while True:
        start = time.perf_counter()
        sum(range(k))
        took = time.perf_counter() - start
        if took > 0.05:
            return int(k * seconds / took)
        k *= 4


@contextmanager
def gil_hog(seconds: float) -> Iterator[None]:
    k = _calibrate_hog(seconds)
    go = threading.Event()

    def hog() -> None:
        go.wait()
        time.sleep(0.05)  # let the caller enter wasm (and drop the GIL) first
        sum(range(k))

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    go.set()
    try:
        yield
    finally:
        thread.join()


def _plugin(scenario: str, timeout: float) -> Plugin:
    from callgate.gates.app import AppGates
    from callgate.runtime import Limits, Plugin
    from callgate.runtime.loading import default_providers

    limits = Limits(timeout=timeout)
    if not scenario.startswith("gates"):
        return Plugin(WASM / "hostile_spin.wasm", limits=limits)
    gates = AppGates()
    gates.add("probe1", lambda call, a: a, params=("i64",), results=("i64",),
              uses_memory=False)
    policy = '[gates]\ndefault = "errno(EPERM)"\n'
    return Plugin(WASM / "hostile_denied_loop.wasm", providers=default_providers(),
                  gates=gates, policy=policy, limits=limits)


def one_call(scenario: str, timeout: float) -> tuple[float, float]:
    """(seconds until the call returned, seconds of the calling thread's CPU)."""
    from callgate.gates.errors import DeadlineExceeded

    plugin = _plugin(scenario, timeout)
    busy = 3 if scenario.endswith("busy3") else 0
    around: AbstractContextManager[None] = (
        gil_hog(3 * timeout) if scenario == "gil-hog" else busy_threads(busy))
    try:
        with around:
            cpu = time.thread_time()
            start = time.monotonic()
            try:
                plugin.call_int("run")
            except DeadlineExceeded:
                pass
            else:
                raise AssertionError("the guest returned: it should run until its deadline")
            return time.monotonic() - start, time.thread_time() - cpu
    finally:
        plugin.close()


def measure_here(timeout: float, repeats: int, scenarios: tuple[str, ...]) -> dict[str, Any]:
    """Every scenario in this process, on whatever path it runs."""
    import callgate
    from callgate.runtime.limits import Limits, SharedEngine

    ticker = SharedEngine.for_limits(Limits(timeout=timeout)).ticker
    kind = getattr(ticker, "path", None) or "the sleeping Python ticker (before issue 12)"
    path = f"{kind} ticker, callgate from {Path(callgate.__file__).parent}"
    measured: dict[str, dict[str, float]] = {}
    for scenario in scenarios:
        runs = [one_call(scenario, timeout) for _ in range(repeats)]
        measured[scenario] = {
            "returned": statistics.median(r[0] for r in runs) / timeout,
            "guest_ran": statistics.median(r[1] for r in runs) / timeout,
            "worst_returned": max(r[0] for r in runs) / timeout,
        }
    return {"path": path, "timeout": timeout, "scenarios": measured}


def measure_path(path: str, timeout: float, repeats: int,
                 scenarios: tuple[str, ...]) -> dict[str, Any]:
    """Run :func:`measure_here` in a fresh interpreter for ``path``."""
    if path == "here":
        return measure_here(timeout, repeats, scenarios)
    env = dict(os.environ)
    env.pop("CALLGATE_PURE_PYTHON", None)
    if path == "python":
        env["CALLGATE_PURE_PYTHON"] = "1"
    cmd = [sys.executable, __file__, "--json", "--paths", "here", "--timeout", str(timeout),
           "--repeats", str(repeats), "--scenarios", *scenarios]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                          timeout=600)
    results: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return results


def table(all_results: dict[str, dict[str, Any]]) -> str:
    lines = ["| path | scenario | returned (× timeout) | guest ran (× timeout) | worst returned |",
             "| --- | --- | ---: | ---: | ---: |"]
    for name, results in all_results.items():
        for scenario, r in results["scenarios"].items():
            lines.append(f"| {name} | {scenario} | {r['returned']:.3f} | {r['guest_ran']:.3f} "
                         f"| {r['worst_returned']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", nargs="+", default=["native", "python"],
                        choices=["native", "python", "here"])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    scenarios = tuple(args.scenarios)
    results = {path: measure_path(path, args.timeout, args.repeats, scenarios)
               for path in args.paths}
    if args.json:
        print(json.dumps(results["here"] if args.paths == ["here"] else results))
        return 0
    for path, r in results.items():
        print(f"{path}: {r['path']}")
    print(f"timeout {args.timeout} s, median of {args.repeats}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
