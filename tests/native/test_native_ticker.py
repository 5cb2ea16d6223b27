"""callgate.native.ticker: the native ticker and its Python twin decide alike, and only the
native one ticks while a host thread holds the GIL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from hypothesis import example, given, strategies as st
from native_helpers import require_native

from callgate.native import loader, ticker as ticker_module
from callgate.native.ticker import (
    NATIVE,
    PYTHON,
    U64,
    NativeTarget,
    Ticker,
    _PythonLoop,
    next_tick_ns,
    ticks_due,
)

PERIOD_NS = 5_000_000
# Edges first: 0, 1, the top, and the quotients where products overflow.
u64 = st.one_of(st.sampled_from([0, 1, 2, 3, PERIOD_NS, U64 // 3, U64 // 2, U64 - 1, U64]),
                st.integers(min_value=0, max_value=U64))




# -- the schedule: C and Python compute the same numbers --------------------------------------

@given(origin=u64, now=u64, period=u64, done=u64)
@example(origin=0, now=U64, period=1, done=0)
@example(origin=U64, now=U64, period=1, done=0)
@example(origin=5, now=4, period=1, done=0)
@example(origin=0, now=100, period=0, done=0)
@example(origin=0, now=10, period=5, done=2)
@example(origin=0, now=10, period=5, done=3)
def test_ticks_due_c_and_python_agree(origin, now, period, done):
    require_native()
    assert loader.core().lib.cg_ticks_due(origin, now, period, done) == \
        ticks_due(origin, now, period, done)


@given(origin=u64, period=u64, done=u64)
@example(origin=U64, period=1, done=0)
@example(origin=0, period=U64, done=1)
@example(origin=0, period=2, done=U64)
@example(origin=1, period=(U64 >> 1) + 1, done=0)
@example(origin=0, period=0, done=7)
@example(origin=3, period=0, done=U64)  # done + 1 overflows, times 0 (found by this test)
@example(origin=0, period=3, done=U64 // 3 - 1)
@example(origin=0, period=3, done=U64 // 3)
def test_next_tick_c_and_python_agree(origin, period, done):
    require_native()
    assert loader.core().lib.cg_next_tick_ns(origin, period, done) == \
        next_tick_ns(origin, period, done)


def test_the_schedule_catches_up_instead_of_drifting():
    # Woken 3.5 periods late with one tick made: three are due at once, none twice.
    assert ticks_due(1000, 1000 + 45, 10, 1) == 3
    assert ticks_due(1000, 1000 + 45, 10, 4) == 0
    assert next_tick_ns(1000, 10, 4) == 1050
    assert ticks_due(1000, 999, 10, 0) == 0  # the clock never goes back, but if it did
    assert next_tick_ns(U64 - 5, 10, 0) == U64


# -- the two loops behave alike -----------------------------------------------------------------

class Counter:
    """A tick target both loops can drive, read without taking any lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == NATIVE:
            core = loader.core()
            self._cell = core.ffi.new("uint64_t *")
            address = int(core.ffi.cast("uintptr_t", self._cell))
            tick = int(core.ffi.cast("uintptr_t", core.lib.cg_count_tick))
            self.target: NativeTarget | None = NativeTarget(tick, address)
        else:
            self._box = [0]
            self.target = None

    def tick(self) -> None:
        self._box[0] += 1

    @property
    def value(self) -> int:
        # A plain load: no call, so the GIL is never released to read it.
        return int(self._cell[0]) if self.path == NATIVE else self._box[0]

    def ticker(self, period_ns: int = PERIOD_NS) -> Ticker:
        target = self.target
        native: Callable[[], NativeTarget] | None = None if target is None else lambda: target
        ticker = Ticker(self.tick, native, period_ns=period_ns, name="callgate-test",
                        pure_python=self.path == PYTHON)
        assert ticker.path == self.path
        return ticker


@pytest.fixture(params=[NATIVE, PYTHON])
def counter(request: pytest.FixtureRequest) -> Iterator[Counter]:
    if request.param == NATIVE:
        require_native()
    yield Counter(request.param)


def wait_for(condition: Callable[[], bool], within: float = 30.0) -> bool:
    end = time.monotonic() + within
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def test_a_loop_never_ticks_ahead_of_the_clock_and_does_tick(counter):
    ticker = counter.ticker()
    try:
        start = time.monotonic_ns()
        ticker.acquire()
        assert wait_for(lambda: counter.value >= 10)
        made, elapsed = counter.value, time.monotonic_ns() - start
        assert made <= elapsed // PERIOD_NS  # tick k is never made before origin + k*period
        assert ticker.ticks == made
    finally:
        ticker.close()


def test_release_parks_the_loop_at_once_and_acquire_resumes_it(counter):
    ticker = counter.ticker()
    try:
        ticker.acquire()
        ticker.acquire()
        assert wait_for(lambda: counter.value >= 2)
        ticker.release()  # one user left: still ticking
        seen = counter.value
        assert wait_for(lambda: counter.value > seen)
        ticker.release()  # parked: no tick after release() returned, not even one in flight
        parked = counter.value
        time.sleep(10 * PERIOD_NS / 1e9)
        assert counter.value == parked
        with pytest.raises(RuntimeError):
            ticker.release()
        ticker.acquire()  # the same thread runs again
        assert wait_for(lambda: counter.value > parked)
    finally:
        ticker.close()


def test_only_the_native_loop_ticks_while_a_host_thread_holds_the_gil(counter):
    """A C call that never drops the GIL (``sum`` over a range), with forced GIL
    hand-overs turned off so nothing else can run Python meanwhile."""
    ticker = counter.ticker()
    k = 1_000_000
    while True:  # about 0.3 s of holding the GIL
        start = time.perf_counter()
        sum(range(k))
        took = time.perf_counter() - start
        if took > 0.03:
            k = int(k * 0.3 / took)
            break
        k *= 4
    interval = sys.getswitchinterval()
    try:
        ticker.acquire()
        assert wait_for(lambda: counter.value >= 1)
        sys.setswitchinterval(100.0)
        before = counter.value
        sum(range(k))
        during = counter.value - before
        sys.setswitchinterval(interval)
    finally:
        sys.setswitchinterval(interval)
        ticker.close()
    if counter.path == NATIVE:
        assert during >= 1, "the native ticker waited for the GIL"
    else:
        assert during == 0  # the twin's known limit: it needs the GIL to tick


def test_close_ends_the_thread_and_a_closed_ticker_can_start_again(counter):
    ticker = counter.ticker()
    ticker.acquire()
    assert wait_for(lambda: counter.value >= 1)
    ticker.close()
    stopped = counter.value
    time.sleep(5 * PERIOD_NS / 1e9)
    assert counter.value == stopped
    assert not [t for t in threading.enumerate() if t.name == "callgate-test"]
    ticker.acquire()  # a fresh loop
    try:
        assert wait_for(lambda: counter.value > stopped)
    finally:
        ticker.close()


def test_native_loop_releases_its_target_once_and_refuses_a_zero_period():
    require_native()
    ffi, lib = loader.core().ffi, loader.core().lib
    cell = ffi.new("uint64_t *")
    count = ffi.cast("cg_tick_fn", lib.cg_count_tick)
    # The counting function is the release too: never run, freed once, the cell reads 1.
    handle = lib.cg_ticker_new(count, cell, count, PERIOD_NS, b"callgate-test")
    assert handle != ffi.NULL
    lib.cg_ticker_free(handle)
    assert cell[0] == 1
    assert lib.cg_ticker_new(count, cell, ffi.NULL, 0, ffi.NULL) == ffi.NULL
    assert lib.cg_ticker_new(ffi.NULL, cell, ffi.NULL, PERIOD_NS, ffi.NULL) == ffi.NULL


def test_release_during_interpreter_exit_never_waits_for_a_dead_twin(
        monkeypatch: pytest.MonkeyPatch):
    """Once finalization starts, daemon threads end at their next GIL wait: the twin's may
    end mid-tick, holding its loop's lock for good. A plugin's finalizer then releasing
    its ticker must not wait for that lock (the interpreter would never exit)."""
    ticker = Ticker(lambda: None, period_ns=PERIOD_NS, pure_python=True)
    ticker.acquire()
    loop = ticker._loop
    assert isinstance(loop, _PythonLoop)
    dead = threading.Thread(target=loop._cv.acquire)  # ends holding the lock, like the twin
    dead.start()
    dead.join()
    monkeypatch.setattr(ticker_module.sys, "is_finalizing", lambda: True)
    finalizer = threading.Thread(target=ticker.release, daemon=True)
    finalizer.start()
    finalizer.join(30)
    try:
        assert not finalizer.is_alive(), "release() waited for a lock a dead thread holds"
    finally:
        loop._cv.release()
        monkeypatch.undo()
        finalizer.join()
        ticker.close()


# -- which path runs ----------------------------------------------------------------------------

def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != loader.FORCE_PURE_PYTHON}
    return subprocess.run([sys.executable, "-c", code], env={**full, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_env_var_forces_the_python_twin_and_says_so():
    done = run_python(
        "from callgate.native import native_available, native_status\n"
        "from callgate.runtime.limits import Limits, SharedEngine\n"
        "s = native_status()\n"
        "print(native_available(), s.forced, SharedEngine.for_limits(Limits()).ticker.path)\n",
        CALLGATE_PURE_PYTHON="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "python"]
    assert "NativeFallbackWarning" not in done.stderr  # asked for: no warning
    status = run_python("import sys; from callgate.native.__main__ import main; "
                        "sys.exit(main(['--require']))", CALLGATE_PURE_PYTHON="1")
    assert status.returncode == 1
    assert status.stdout.startswith("pure Python: CALLGATE_PURE_PYTHON")


def test_without_the_env_var_the_native_core_is_used():
    require_native()
    done = run_python("from callgate.runtime.limits import Limits, SharedEngine\n"
                      "print(SharedEngine.for_limits(Limits()).ticker.path)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["native"]
    status = run_python("import sys; from callgate.native.__main__ import main; "
                        "sys.exit(main(['--require']))")
    assert status.returncode == 0 and status.stdout.startswith("native core: ")


def test_a_stale_core_counts_as_not_built(monkeypatch: pytest.MonkeyPatch):
    class Stale:
        __file__ = "/somewhere/_core.so"
        lib = object()

    monkeypatch.delenv(loader.FORCE_PURE_PYTHON, raising=False)
    monkeypatch.setattr(loader.importlib, "import_module", lambda name: Stale)
    core, status = loader._load()
    assert core is None and not status.native and not status.forced
    assert "stale" in status.reason and "cg_ticker_new" in status.reason


def test_a_missing_core_warns_once_when_a_ticker_falls_back(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(loader, "_STATUS", loader.NativeStatus(False, "not built", False))
    monkeypatch.setattr(loader, "_CORE", None)
    monkeypatch.setattr(loader, "_warned", False)
    ticker = Ticker(lambda: None, lambda: NativeTarget(0, 0), period_ns=PERIOD_NS)
    assert ticker.path == PYTHON
    try:
        with pytest.warns(loader.NativeFallbackWarning, match="not built"):
            ticker.acquire()
        ticker.release()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ticker.acquire()  # once per process
    finally:
        ticker.close()
