"""A ticker: call a tick function every period while anyone needs it.

callgate's deadlines use it to advance a wasmtime engine's epoch (``runtime/limits.py``),
but it knows nothing of wasmtime: it is handed a Python callable for the pure-Python
path, and for the native path a :class:`NativeTarget` (a C function pointer and its
argument, as addresses).

Two implementations make the same decisions:

* **native** (``csrc/ticker.c``): a pthread that never takes the GIL, so it ticks on
  time whatever the host's Python threads do (spin, or hold the GIL in one long C call);
* **the Python twin** (:class:`_PythonLoop`): a daemon thread that needs the GIL for
  every wake-up, so a host thread holding the GIL delays it, and busy Python threads
  each make it wait for a GIL hand-over (a switch interval, 5 ms by default).

Both follow one schedule, anchored to ``CLOCK_MONOTONIC`` when the ticker starts
running: tick *k* is due at ``origin + k * period``, and each wake-up makes every tick
that is due (:func:`ticks_due`). A loop that was kept from running catches up at its
next wake-up instead of drifting: the old ticker slept a period between ticks, so
every GIL wait added to the deadline (a 2 s timeout fired after 13.7 s beside three
busy Python threads). Catching up can make a deadline set while the loop lagged fire
early by that lag; the native loop's lag is a scheduling delay (microseconds), the
twin's a GIL hand-over.

Acquire/release are reference counted. The first acquire starts the thread; the last
release *parks* it (no ticks, blocked on a condition variable) rather than ending it,
so running again later needs no new thread: a process sealed by seccomp (lockdown
comes after loading, and the runtime baseline grants no ``clone``) can still start and
stop deadlines. In a child made by ``fork`` the thread is gone: the ticker drops the
parent's loop unused (its lock may have been held mid-tick) and, if it had users,
starts a fresh one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from callgate.native import loader

U64 = (1 << 64) - 1
NATIVE = "native"
PYTHON = "python"


def ticks_due(origin_ns: int, now_ns: int, period_ns: int, done: int) -> int:
    """Ticks due at ``now_ns`` not made yet (twin of ``cg_ticks_due``)."""
    if period_ns == 0 or now_ns <= origin_ns:
        return 0
    elapsed = (now_ns - origin_ns) // period_ns
    return elapsed - done if elapsed > done else 0


def next_tick_ns(origin_ns: int, period_ns: int, done: int) -> int:
    """When tick ``done + 1`` is due, saturated at 2**64 - 1 (twin of ``cg_next_tick_ns``)."""
    return min(origin_ns + (done + 1) * period_ns, U64)


@dataclass(frozen=True, slots=True)
class NativeTarget:
    """What the native loop calls, as addresses: ``tick(target)`` every period, and
    ``release(target)`` once after the last tick (0: nothing to release). ``target``
    must stay valid until then; the loop owns it from creation on."""

    tick: int
    target: int
    release: int = 0


class _Loop(Protocol):
    def set_running(self, running: bool) -> None: ...

    @property
    def ticks(self) -> int: ...

    def close(self) -> None: ...


class _NativeLoop:
    """``csrc/ticker.c``: a pthread that ticks without the GIL."""

    def __init__(self, core: Any, target: NativeTarget, period_ns: int, name: str) -> None:
        ffi, lib = core.ffi, core.lib
        self._ffi, self._lib = ffi, lib
        release = ffi.cast("cg_tick_fn", target.release) if target.release else ffi.NULL
        handle = lib.cg_ticker_new(ffi.cast("cg_tick_fn", target.tick),
                                   ffi.cast("void *", target.target), release,
                                   period_ns, name.encode())
        if handle == ffi.NULL:
            if target.release:  # not handed over: release it here
                release(ffi.cast("void *", target.target))
            raise MemoryError("cannot create the native ticker")
        self._handle = handle

    def set_running(self, running: bool) -> None:
        err = self._lib.cg_ticker_run(self._handle, 1 if running else 0)
        if err:
            raise OSError(err, f"cannot start the native ticker thread: {os.strerror(err)}")

    @property
    def ticks(self) -> int:
        state = self._ffi.new("cg_ticker_state *")
        self._lib.cg_ticker_read(self._handle, state)
        return int(state.ticks)

    def close(self) -> None:
        """Stop and join the thread, release the target. Idempotent."""
        handle, self._handle = self._handle, self._ffi.NULL
        if handle != self._ffi.NULL:
            self._lib.cg_ticker_free(handle)


class _PythonLoop:
    """The twin of ``csrc/ticker.c``, statement for statement, on a Python thread."""

    def __init__(self, tick: Callable[[], None], period_ns: int, name: str) -> None:
        if period_ns <= 0:
            raise ValueError(f"period_ns must be positive, got {period_ns}")
        self._tick = tick
        self._period_ns = period_ns
        self._name = name
        self._cv = threading.Condition(threading.Lock())
        self._origin_ns = 0
        self._done = 0
        self._ticks = 0
        self._running = False
        self._quit = False
        self._thread: threading.Thread | None = None

    def set_running(self, running: bool) -> None:
        with self._cv:
            if running and not self._running and not self._quit:
                if self._thread is None:
                    thread = threading.Thread(target=self._main, name=self._name, daemon=True)
                    thread.start()  # RuntimeError if it cannot: stays parked
                    self._thread = thread
                self._origin_ns = time.monotonic_ns()
                self._done = 0
                self._running = True
                self._cv.notify()
            elif not running and self._running:
                self._running = False
                self._cv.notify()

    @property
    def ticks(self) -> int:
        with self._cv:
            return self._ticks

    def close(self) -> None:
        with self._cv:
            self._quit = True
            self._running = False
            self._cv.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _main(self) -> None:
        with self._cv:
            while not self._quit:
                if not self._running:
                    self._cv.wait()
                    continue
                now = time.monotonic_ns()
                due = ticks_due(self._origin_ns, now, self._period_ns, self._done)
                if due:
                    self._done += due
                    for _ in range(due):
                        self._tick()
                    self._ticks += due
                    continue
                until = next_tick_ns(self._origin_ns, self._period_ns, self._done)
                self._cv.wait(max(0, until - now) / 1e9)


class Ticker:
    """Calls a tick every ``period_ns`` while acquired (reference counted).

    ``tick`` is what the Python twin calls; ``native``, if given, makes the
    :class:`NativeTarget` for the native loop, and is called only when that loop is
    created (so a target that holds a resource is made only when used). The native
    loop runs when the core is available (:func:`loader.native_available`), ``native``
    is given and ``pure_python`` is not set.
    """

    def __init__(self, tick: Callable[[], None],
                 native: Callable[[], NativeTarget] | None = None, *, period_ns: int,
                 name: str = "callgate-tick", pure_python: bool = False) -> None:
        if period_ns <= 0:
            raise ValueError(f"period_ns must be positive, got {period_ns}")
        self._tick = tick
        self._native = native
        self._period_ns = period_ns
        self._name = name
        self.path = PYTHON if pure_python or native is None or not loader.native_available() \
            else NATIVE
        self._lock = threading.Lock()
        self._users = 0
        self._loop: _Loop | None = None
        _tickers.add(self)

    @property
    def users(self) -> int:
        return self._users

    @property
    def ticks(self) -> int:
        """Ticks made by the current loop (0 before the first acquire)."""
        loop = self._loop
        return 0 if loop is None else loop.ticks

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                loop = self._loop if self._loop is not None else self._new_loop()
                self._loop = loop
                loop.set_running(True)
            self._users += 1

    def release(self) -> None:
        if sys.is_finalizing():
            # Daemon threads end at their next GIL wait once finalization starts, and one
            # may have ended holding a lock parking needs (the twin holds its loop's lock
            # while it ticks): parking could then wait forever. The loop ticks on, harmless,
            # until the process exits.
            return
        with self._lock:
            if self._users <= 0:
                raise RuntimeError(f"{self._name}: release() without a matching acquire()")
            self._users -= 1
            if self._users == 0 and self._loop is not None:
                self._loop.set_running(False)

    def close(self) -> None:
        """End the loop's thread for good (tests, embedders that unload): idempotent."""
        with self._lock:
            loop, self._loop = self._loop, None
            self._users = 0
        if loop is not None:
            loop.close()

    def _new_loop(self) -> _Loop:
        if self.path == NATIVE:
            assert self._native is not None
            return _NativeLoop(loader.core(), self._native(), self._period_ns, self._name)
        if self._native is not None:
            loader.warn_fallback(f"the {self._name} ticker (Limits.timeout deadlines)")
        return _PythonLoop(self._tick, self._period_ns, self._name)

    def _after_fork_in_child(self) -> None:
        # The parent's loop is left untouched: its thread is gone, and its lock (Python's
        # or C's) may have been held mid-tick by that thread. Leaked, by design.
        self._lock = threading.Lock()
        self._loop = None
        if self._users:
            loop = self._new_loop()
            self._loop = loop
            loop.set_running(True)


_tickers: weakref.WeakSet[Ticker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for ticker in list(_tickers):
        ticker._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
