"""Clock gates: realtime and monotonic time, in nanoseconds.

The process and thread CPU-time clocks answer EBADF, as in wasmtime, which offers neither
(``poll_oneoff`` on one fails with EINVAL); they would also be one more timer for a
covert channel.

A policy's ``[gates.clocks] resolution`` (``WasiState.clock_resolution_ns``, set by the
runtime) coarsens them: ``clock_time_get`` answers the time rounded down to a multiple of
it, and ``clock_res_get`` reports it when it is coarser than the host's (docs/covert.md).
"""

from __future__ import annotations

import time

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import types as T
from callgate.gates.wasi.gate import WasiError, wasi_gate
from callgate.gates.wasi.state import WasiCall

HOST_CLOCKS = {
    T.CLOCK_REALTIME: time.CLOCK_REALTIME,
    T.CLOCK_MONOTONIC: time.CLOCK_MONOTONIC,
}
#: Clocks WASI defines and callgate, like wasmtime, does not offer.
CPU_CLOCKS = frozenset({T.CLOCK_PROCESS_CPUTIME_ID, T.CLOCK_THREAD_CPUTIME_ID})
CLOCK_SYSCALLS = frozenset({"clock_gettime", "clock_getres"})


def host_clock(clock_id: int) -> int:
    """The host clock for a WASI clock id; EBADF for a CPU-time clock, EINVAL for ids WASI
    does not define."""
    try:
        return HOST_CLOCKS[clock_id]
    except KeyError:
        raise WasiError(E.EBADF if clock_id in CPU_CLOCKS else E.EINVAL) from None


@wasi_gate("i32 i32", syscalls=CLOCK_SYSCALLS)
def clock_res_get(call: WasiCall, clock_id: int, ret: int) -> None:
    """A clock's resolution."""
    res = time.clock_getres(host_clock(clock_id))
    call.mem.set_u64(ret, max(1, round(res * 1e9), call.state.clock_resolution_ns))


@wasi_gate("i32 i64 i32", syscalls=CLOCK_SYSCALLS)
def clock_time_get(call: WasiCall, clock_id: int, precision: int, ret: int) -> None:
    """A clock's current time (``precision`` is a hint; the host's best is given)."""
    del precision
    host = HOST_CLOCKS.get(clock_id)  # host_clock(), inlined: this is the hottest gate
    if host is None:
        host = host_clock(clock_id)  # not offered: raises EBADF or EINVAL
    now = time.clock_gettime_ns(host)
    coarse = call.state.clock_resolution_ns
    if coarse:
        now -= now % coarse
    call.mem.set_u64(ret, now)
