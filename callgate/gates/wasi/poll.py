"""poll_oneoff: wait for clock deadlines and fd readiness.

Events look as under wasmtime (measured, wasmtime-py 50): regular files and
byte-buffer stdio are always ready, with nbytes 1 (a file read at its end also
says HANGUP); host stdio is polled and, when ready, also says nbytes 1; a
directory, or stdio subscribed the wrong way (stdin for writing, stdout for
reading), fails the whole call with EBADF, a CPU-time clock with EINVAL. Other
host streams and sockets are polled with ``poll(2)``. A wait never outlasts the
plugin's per-call deadline: the gate sleeps until it, then raises
``DeadlineExceeded`` through :meth:`Plugin.check_deadline`.

One call takes at most :data:`MAX_SUBSCRIPTIONS` subscriptions (EINVAL past it,
before the array is read; arrays outside memory are EFAULT first), so what the
host builds for a call - the copied array, the events, the poll set - stays a
few hundred KiB whatever count the guest passes.
"""

from __future__ import annotations

import os
import select
import time

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import types as T
from callgate.gates.wasi.capfs import STAT_SYSCALLS
from callgate.gates.wasi.clocks import CPU_CLOCKS, HOST_CLOCKS
from callgate.gates.wasi.fdtable import FdEntry
from callgate.gates.wasi.gate import WasiError, wasi_gate
from callgate.gates.wasi.state import WasiCall

#: Subscriptions per poll_oneoff call. Linux's poll(2) answers EINVAL past RLIMIT_NOFILE
#: (commonly 1024); 4096 is a read and a write subscription on every fd of a 1024-fd
#: table with room for clocks, and costs at most 4096 x (48 + 32) bytes = 320 KiB.
MAX_SUBSCRIPTIONS = 4096

_FD_RIGHT = {T.EVENTTYPE_FD_READ: T.R["FD_READ"], T.EVENTTYPE_FD_WRITE: T.R["FD_WRITE"]}


def _fd_ready(entry: FdEntry, kind: int) -> tuple[int, int] | None:
    """(nbytes, flags) if an fd is ready without polling, else None (poll the host fd)."""
    if entry.fed is not None or entry.sink is not None:
        return (1, 0)
    if entry.filetype == T.FILETYPE_REGULAR_FILE:
        host = entry.fd()
        at_end = kind == T.EVENTTYPE_FD_READ and \
            os.lseek(host, 0, os.SEEK_CUR) >= os.fstat(host).st_size
        return (1, T.EVENTRWFLAGS_HANGUP if at_end else 0)
    return None


@wasi_gate("i32 i32 i32 i32", syscalls={"ppoll", "poll", "clock_gettime", "clock_nanosleep",
                                         "lseek"} | STAT_SYSCALLS)
def poll_oneoff(call: WasiCall, in_ptr: int, out_ptr: int, nsubscriptions: int, ret: int) -> None:
    """Wait for the first of the subscriptions; write one event per ready one."""
    if nsubscriptions == 0:
        raise WasiError(E.EINVAL)
    mem = call.mem
    mem.check(in_ptr, nsubscriptions * T.SUBSCRIPTION.size)
    mem.check(out_ptr, nsubscriptions * T.EVENT.size)
    mem.check(ret, 4)
    if nsubscriptions > MAX_SUBSCRIPTIONS:
        raise WasiError(E.EINVAL)
    raw = mem.read(in_ptr, nsubscriptions * T.SUBSCRIPTION.size)
    table = call.state.table
    events: list[bytes] = []
    clocks: list[tuple[float, int]] = []       # (monotonic deadline, userdata)
    polled: dict[int, list[tuple[int, int, bool]]] = {}  # host fd -> [(userdata, kind, stdio)]
    start = time.monotonic()
    for userdata, tag, body in T.SUBSCRIPTION.iter_unpack(raw):
        if tag == T.EVENTTYPE_CLOCK:
            clock_id, timeout, _precision, flags = T.SUB_CLOCK.unpack(body)
            if clock_id in CPU_CLOCKS:
                raise WasiError(E.EINVAL)  # wasmtime fails the whole call
            host = HOST_CLOCKS.get(clock_id)
            if host is None or flags & ~T.SUBCLOCKFLAGS_ABSTIME:
                events.append(T.EVENT.pack(userdata, E.EINVAL, tag, 0, 0))
                continue
            if flags & T.SUBCLOCKFLAGS_ABSTIME:
                timeout = max(0, timeout - time.clock_gettime_ns(host))
            clocks.append((start + timeout / 1e9, userdata))
        elif tag in _FD_RIGHT:
            (fd,) = T.SUB_FD.unpack_from(body)
            entry = table.get(fd)  # an unknown fd fails the whole call (EBADF), as in wasmtime
            if entry.is_dir or (entry.stdio and entry.allowed & _FD_RIGHT[tag] == 0):
                raise WasiError(E.EBADF)
            if entry.allowed & _FD_RIGHT[tag] == 0 and not entry.seekable:
                events.append(T.EVENT.pack(userdata, E.EBADF, tag, 0, 0))
                continue
            ready = _fd_ready(entry, tag)
            if ready is not None:
                events.append(T.EVENT.pack(userdata, 0, tag, ready[0], ready[1]))
            else:
                polled.setdefault(entry.fd(), []).append((userdata, tag, entry.stdio))
        else:
            events.append(T.EVENT.pack(userdata, E.EINVAL, tag, 0, 0))
    if not events:
        events = _wait(call, clocks, polled)
    mem.write(out_ptr, b"".join(events))
    mem.set_u32(ret, len(events))


def _wait(call: WasiCall, clocks: list[tuple[float, int]],
          polled: dict[int, list[tuple[int, int, bool]]]) -> list[bytes]:
    poller = select.poll()
    for fd, subs in polled.items():
        mask = 0
        for _, kind, _ in subs:
            mask |= select.POLLIN if kind == T.EVENTTYPE_FD_READ else select.POLLOUT
        poller.register(fd, mask)
    plugin = call.plugin
    while True:
        now = time.monotonic()
        first = min((deadline for deadline, _ in clocks), default=None)
        budget = plugin.remaining_time()
        wait = None if first is None else max(0.0, first - now)
        if budget is not None:
            wait = budget if wait is None else min(wait, budget)
        if polled:
            ready = poller.poll(None if wait is None else wait * 1000)
        else:
            time.sleep(wait if wait is not None else 0)
            ready = []
        events = []
        for fd, revents in ready:
            for userdata, kind, stdio in polled[fd]:
                want = select.POLLIN if kind == T.EVENTTYPE_FD_READ else select.POLLOUT
                hangup = revents & (select.POLLHUP | select.POLLERR)
                if revents & want or hangup:
                    # wasmtime reads stdio through its own streams: "1 byte", never HANGUP
                    nbytes, flags = (1, 0) if stdio else \
                        (0, T.EVENTRWFLAGS_HANGUP if hangup else 0)
                    events.append(T.EVENT.pack(userdata, 0, kind, nbytes, flags))
        now = time.monotonic()
        events += [T.EVENT.pack(userdata, 0, T.EVENTTYPE_CLOCK, 0, 0)
                   for deadline, userdata in clocks if deadline <= now]
        if events:
            return events
        plugin.check_deadline()
