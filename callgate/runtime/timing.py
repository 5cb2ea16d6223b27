"""A policy's timing options, applied to one plugin's gates (docs/covert.md).

``[gates.clocks] resolution`` is enforced by the clock gates themselves
(:mod:`callgate.gates.wasi.clocks` reads ``WasiState.clock_resolution_ns``, which is set
here). ``[gates] jitter`` is applied here, around each import's callback: before the
call is decided, the callback waits a random time drawn uniformly from ``[0, jitter)``,
whatever the verdict, so a denied call is as unsteady as an allowed one.

The wait is a busy loop on ``time.perf_counter_ns`` (``time.sleep`` overshoots by tens
of microseconds, more than the jitter it would add); waits over :data:`SLEEP_FROM_NS`
sleep for all but their last :data:`SPIN_TAIL_NS`. Each import draws from its own
``random.Random`` seeded from ``os.urandom``: a guest sees the draws only through time,
far too noisily to reconstruct the generator's state.

A plugin with timing options runs every gate in Python: the native core's C bodies
(``clock_time_get`` among them) know nothing of them.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from callgate.gates.wasi.state import WasiState
from callgate.policy.model import GateTiming

#: Waits longer than this sleep first (the scheduler's wake-up is late by ~50-100 us).
SLEEP_FROM_NS = 2_000_000
SPIN_TAIL_NS = 500_000

RawCallback = Callable[[Any, Any, Any, int], Any]


def apply_timing(callback: RawCallback, state: object, timing: GateTiming) -> RawCallback:
    """``callback`` with ``timing`` applied: the clock resolution set on a WASI state, and
    the callback wrapped to wait its jitter first (unchanged when there is none)."""
    if timing.clock_resolution_ns and isinstance(state, WasiState):
        state.clock_resolution_ns = timing.clock_resolution_ns
    if not timing.jitter_ns:
        return callback
    return jittered(callback, timing.jitter_ns)


def jittered(callback: RawCallback, jitter_ns: int,
             draw: Callable[[], float] | None = None) -> RawCallback:
    """A raw callback that waits ``[0, jitter_ns)`` ns, uniformly drawn, then calls ``callback``
    (``draw``: a uniform [0, 1) source; default a generator seeded from ``os.urandom``)."""
    draw = draw or random.Random(os.urandom(16)).random
    clock = time.perf_counter_ns
    sleep = time.sleep

    def cb(env: Any, caller: Any, raw: Any, n: int) -> Any:
        wait = int(draw() * jitter_ns)
        end = clock() + wait
        if wait > SLEEP_FROM_NS:
            sleep((wait - SPIN_TAIL_NS) / 1e9)
        while clock() < end:
            pass
        return callback(env, caller, raw, n)

    return cb
