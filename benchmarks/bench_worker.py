"""Process isolation: what one call to a locked-down worker costs, against a call in-process.

Usage: ``python benchmarks/bench_worker.py [--write] [--calls N]``

* in-process: the same service object called directly, no isolation;
* worker round trip: parent -> worker -> parent over the socketpair (one JSON frame
  each way), with a small int argument and with 4 KiB of bytes;
* forwarded request: a call during which the worker asks the parent once (what an
  app-defined gate or a TRAP for the broker costs in a worker), plus one guest-memory
  read by the parent;
* worker start: spawn, setup, lockdown, ready.

Medians of N calls after a warm-up. ``--write`` replaces the ``## Worker round trip``
section of benchmarks/RESULTS.md and leaves every other section as it is.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = str(ROOT / "tests" / "kernel")
sys.path.insert(0, SERVICES)

from worker_services import build  # noqa: E402

from callgate.kernel.worker import Worker  # noqa: E402
from callgate.policy import load_policy_text  # noqa: E402

POLICY = load_policy_text('[kernel]\ndefault = "kill_process"\n').policy
SECTION = "## Worker round trip"


def median_us(fn: Callable[[], object], calls: int) -> float:
    for _ in range(min(200, calls)):
        fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def measure(calls: int) -> list[tuple[str, str]]:
    def gate(message: dict, memory: object) -> int:
        memory.read(0, 16)  # type: ignore[attr-defined]
        return 1

    direct = build({}, {}, None)
    rows = [
        (
            "in-process call, 1 int arg (µs)",
            f"{median_us(lambda: direct.call('echo', [1]), calls):.2f}",
        )
    ]
    starts = []
    for _ in range(5):
        start = time.perf_counter()
        Worker("worker_services:build", policy=POLICY, python_path=[SERVICES]).start().close()
        starts.append(time.perf_counter() - start)
    blob = os.urandom(4096)
    with Worker(
        "worker_services:build", policy=POLICY, python_path=[SERVICES], handlers={"gate": gate}
    ) as worker:
        rows += [
            (
                "worker round trip, 1 int arg (µs)",
                f"{median_us(lambda: worker.call('echo', 1), calls):.1f}",
            ),
            (
                "worker round trip, 4 KiB bytes (µs)",
                f"{median_us(lambda: worker.call('echo', blob), calls):.1f}",
            ),
            (
                "worker call with one forwarded request + memory read (µs)",
                f"{median_us(lambda: worker.call('forward', 'g', 1), calls):.1f}",
            ),
        ]
    rows.append(
        (
            "worker start: spawn, setup, lockdown (median ms)",
            f"{statistics.median(starts) * 1000:.0f}",
        )
    )
    return rows


def table(rows: list[tuple[str, str]], calls: int) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_worker.py --calls {calls}` on {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. Medians. The worker is a real subprocess locked down "
        "with NO_NEW_PRIVS and the derived kernel filter (TSYNC); calls are JSON frames on a "
        "Unix socketpair.",
        "",
        "| measure | value |",
        "| --- | ---: |",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = (
        pattern.sub(lambda _: text + "\n", old)
        if pattern.search(old)
        else old.rstrip() + "\n\n" + text
    )
    path.write_text(new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = table(measure(args.calls), args.calls)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
