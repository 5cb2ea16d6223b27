"""Process isolation: a plugin call through a locked-down worker, against the same call in-process.

Usage: ``python benchmarks/bench_worker.py [N]`` (or through ``benchmarks/run.py``).

The same guests, policy-free, run in a :class:`~callgate.runtime.Plugin` in this
process and in an :class:`~callgate.isolation.isolated.IsolatedPlugin` (a real subprocess
locked down with NO_NEW_PRIVS and the derived kernel filter; calls are JSON frames on a
Unix socketpair):

* ``wordcount`` over 64 bytes through the bytes ABI (no gate calls);
* ``gatecall``'s ``once``: one call of an app-defined 7-arg gate. In-process the gate is
  a plain callback; isolated, the gate function stays in the parent, so each call is a
  round trip *and* one request forwarded back to the parent;
* worker transport alone: the worker tests' echo service (``tests/kernel``), no plugin;
* worker start: spawn, load the plugin, lock down, ready (ms).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from common import Row, in_ms, loop, timed_row

from callgate.gates.app import AppGates
from callgate.isolation.isolated import IsolatedPlugin
from callgate.isolation.worker import Worker
from callgate.policy import load_policy_text
from callgate.runtime import Plugin

GROUP = "Process isolation (worker round trip)"
ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "guests" / "wasm"
SERVICES = str(ROOT / "tests" / "kernel")
TEXT = b"the quick brown fox jumps over the lazy dog, twice: the quick fox\n"[:64]
ARGS = (1, 2, 3, 4, 5, 6, 7)


def _gates() -> AppGates:
    gates = AppGates()

    @gates.gate(params=("i64",) * 7, results=("i64",), uses_memory=False)
    def probe(_call: object, *args: int) -> int:
        return args[0] + args[6]

    return gates


def _transport_row(calls: int, repeats: int) -> Row:
    policy = load_policy_text('[kernel]\ndefault = "kill_process"\n').policy
    sys.path.insert(0, SERVICES)
    with Worker("worker_services:build", policy=policy, python_path=[SERVICES]) as worker:
        return timed_row("worker transport alone: echo 1 int, no plugin",
                         loop(lambda: worker.call("echo", 1)), inner=calls, repeats=repeats,
                         group=GROUP, warmup=2, note="tests/kernel/worker_services.py")


def run(n: int) -> list[Row]:
    """Worker rows; ``n`` // 40 isolated calls per sample (each is 100 µs or more)."""
    repeats = 9 if n >= 10_000 else 3
    calls = max(10, n // 40)
    wordcount = (WASM / "wordcount.wasm").read_bytes()
    gatecall = (WASM / "gatecall.wasm").read_bytes()
    expected = ARGS[0] + ARGS[6]
    rows = []
    with Plugin(wordcount) as local, IsolatedPlugin(wordcount) as remote:
        if local.call("wordcount", TEXT) != remote.call("wordcount", TEXT):
            raise AssertionError("wordcount differs between in-process and isolated")
        base = "in-process Plugin.call, wordcount over 64 B"
        rows.append(timed_row(base, loop(lambda: local.call("wordcount", TEXT)),
                              inner=calls * 10, repeats=repeats, group=GROUP))
        rows.append(timed_row("isolated Plugin.call, wordcount over 64 B",
                              loop(lambda: remote.call("wordcount", TEXT)), inner=calls,
                              repeats=repeats, group=GROUP, baseline=base, warmup=2))
    with Plugin(gatecall, gates=_gates()) as local, \
            IsolatedPlugin(gatecall, gates=_gates()) as remote:
        if local.call_int("once", *ARGS) != expected or remote.call_int("once", *ARGS) != expected:
            raise AssertionError("gatecall.once returned a wrong result")
        base = "in-process call_int → one 7-arg app gate"
        rows.append(timed_row(base, loop(lambda: local.call_int("once", *ARGS)),
                              inner=calls * 10, repeats=repeats, group=GROUP))
        rows.append(timed_row("isolated call_int → one 7-arg app gate (run in the parent)",
                              loop(lambda: remote.call_int("once", *ARGS)), inner=calls,
                              repeats=repeats, group=GROUP, baseline=base, warmup=2,
                              note="round trip + one forwarded gate request"))
    rows.append(_transport_row(calls, repeats))

    def start(count: int) -> None:
        for _ in range(count):
            IsolatedPlugin(wordcount).close()

    row = timed_row("worker start: spawn, load plugin, lock down", start, inner=1,
                    repeats=max(3, repeats // 2), group=GROUP)
    rows.append(in_ms(row, cpu=False))
    # The worker's own CPU time is not this process's: only in-process rows keep a CPU figure.
    return [r if r.name.startswith("in-process") else dataclasses.replace(r, cpu_ns=None)
            for r in rows]


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:65} {row.median_ns:12.1f} {row.unit}  {row.note}")
