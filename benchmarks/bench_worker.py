"""Process isolation: what one call to a locked-down worker costs, against a call in-process.

Usage: ``python benchmarks/bench_worker.py [N]`` (or through ``benchmarks/run.py``).

The service is the worker tests' probe service (``tests/kernel/worker_services.py``):

* in-process: the same service object called directly, no isolation;
* worker round trip: parent -> worker -> parent over the socketpair (one JSON frame
  each way), with a small int argument and with 4 KiB of bytes;
* forwarded request: a call during which the worker asks the parent once (what an
  app-defined gate or a TRAP for the broker costs in a worker), plus one guest-memory
  read by the parent;
* worker start: spawn, setup, lockdown, ready (ms).

The worker is a real subprocess locked down with NO_NEW_PRIVS and the derived kernel
filter (TSYNC); calls are JSON frames on a Unix socketpair.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common import Row, loop, timed_row

from callgate.kernel.worker import Worker
from callgate.policy import load_policy_text

GROUP = "Process isolation (worker round trip)"
ROOT = Path(__file__).resolve().parents[1]
SERVICES = str(ROOT / "tests" / "kernel")
sys.path.insert(0, SERVICES)

from worker_services import build  # noqa: E402

POLICY = load_policy_text('[kernel]\ndefault = "kill_process"\n').policy
IN_PROCESS = "in-process service call, 1 int arg"


def _worker(**kwargs: object) -> Worker:
    return Worker("worker_services:build", policy=POLICY, python_path=[SERVICES], **kwargs)


def run(n: int) -> list[Row]:
    """Worker rows; ``n`` // 40 round trips per sample (each is 100 µs or more)."""
    repeats = 9 if n >= 10_000 else 3
    calls = max(10, n // 40)

    def gate(message: dict, memory: object) -> int:
        memory.read(0, 16)  # type: ignore[attr-defined]
        return 1

    direct = build({}, {}, None)
    rows = [timed_row(IN_PROCESS, loop(lambda: direct.call("echo", [1])), inner=calls * 40,
                      repeats=repeats, group=GROUP, note="no isolation")]
    blob = os.urandom(4096)
    with _worker(handlers={"gate": gate}) as worker:
        for name, fn in (
            ("worker round trip, 1 int arg", lambda: worker.call("echo", 1)),
            ("worker round trip, 4 KiB bytes", lambda: worker.call("echo", blob)),
            ("worker call with one forwarded request + memory read",
             lambda: worker.call("forward", "g", 1)),
        ):
            rows.append(timed_row(name, loop(fn), inner=calls, repeats=repeats, group=GROUP,
                                  baseline=IN_PROCESS, warmup=2))

    def start(count: int) -> None:
        for _ in range(count):
            _worker().start().close()

    row = timed_row("worker start: spawn, setup, lockdown", start, inner=1,
                    repeats=max(3, repeats // 2), group=GROUP)
    rows.append(Row(row.name, row.median_ns / 1e6, 1, row.repeats, "", None, GROUP, "ms",
                    tuple(s / 1e6 for s in row.samples)))
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:60} {row.median_ns:12.1f} {row.unit}  {row.note}")
