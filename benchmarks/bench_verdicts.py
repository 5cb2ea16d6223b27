"""Gated calls on the verdict paths other than ALLOW: denied with an errno, trapped to a broker.

Usage: ``python benchmarks/bench_verdicts.py [N]`` (or through ``benchmarks/run.py``).

Same guest, gates and loop as ``bench_gate.py`` (``guests/wasm/gatecall.wasm``: the
guest calls the 7-arg app gate ``probe`` N times from a wasm loop), under policies whose
verdict for ``probe`` is not a plain allow:

* ``errno(EPERM)``: the gate body never runs; the call returns ``-EPERM`` (an app gate
  with an integer result) and an audit record is made;
* ``trap``: every call goes to the plugin's broker (a Python callable) which answers
  ALLOW, then the gate runs.

The audit logger (``callgate.audit``) is raised to ERROR while timing, so records are
built but not printed: with a logging handler attached, add its cost.

One more row runs the allowing, arg-inspecting policy of ``bench_gate.py`` with
``Plugin(filter_mode="interpreter")``: every call builds a ``seccomp_data`` record and
runs the reference interpreter on the whole program, no constant table, no generated
code. It is the same call as bench_gate's "arg-inspecting (compiled)" row.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from bench_gate import ARG_POLICY, GROUP_HOST, GUESTS, _gates
from common import FUNC_7, Row, timed_row

from callgate.arch.wasi_errno import EPERM
from callgate.runtime import ALLOW, Plugin

GATED_7_ERRNO = "callgate gate, 7 args, denied errno(EPERM)"
GATED_7_TRAP = "callgate gate, 7 args, trap → broker → allow"
GATED_7_INTERPRETED = "callgate gate, 7 args, interpreter only"

ERRNO_POLICY = """
[gates]
default = "kill_process"
app_gates = ["probe"]
[[gates.rules]]
names = ["probe"]
action = "errno(EPERM)"
"""
TRAP_POLICY = ERRNO_POLICY.replace('"errno(EPERM)"', '"trap"')


@contextmanager
def _audit_quiet() -> Any:
    audit = logging.getLogger("callgate.audit")
    level = audit.level
    audit.setLevel(logging.ERROR)
    try:
        yield
    finally:
        audit.setLevel(level)


def _row(name: str, policy: str, n: int, repeats: int, expect: Callable[[int], int],
         counter: str, note: str, broker: Any = None, filter_mode: str = "compiled") -> Row:
    with _audit_quiet(), Plugin(GUESTS / "gatecall.wasm", gates=_gates(), policy=policy,
                                broker=broker, filter_mode=filter_mode) as plugin:
        if (plugin.call_int("run", 3) - expect(3)) % 2**64:  # i64 sum, wrapping
            raise AssertionError(f"{name}: wrong sum from gatecall.run")
        row = timed_row(name, lambda count: plugin.call_int("run", count), inner=n,
                        repeats=repeats, group=GROUP_HOST, baseline=FUNC_7, note=note)
        counts = plugin.counters["probe"]
    if counts[counter] != 3 + (repeats + 1) * n:
        raise AssertionError(f"{name}: expected every call counted as {counter}: {counts}")
    return row


def run(n: int) -> list[Row]:
    """Errno and trap rows, ``n`` gate calls per sample."""
    repeats = 15 if n >= 10_000 else 5
    n = max(n, 100)
    return [
        _row(GATED_7_ERRNO, ERRNO_POLICY, n, repeats, lambda k: -EPERM * k, "errno",
             "gate body skipped, returns -EPERM; audit record built"),
        _row(GATED_7_TRAP, TRAP_POLICY, n, repeats, lambda k: 7 * k, "trap",  # probe returns a6
             "broker is a Python function answering ALLOW", broker=lambda _request: ALLOW),
        _row(GATED_7_INTERPRETED, ARG_POLICY, n, repeats, lambda k: 7 * k, "allow",
             "filter_mode='interpreter': the reference interpreter on every call",
             filter_mode="interpreter"),
    ]


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:50} {row.median_ns or 0:10.1f} ns  {row.note}")
