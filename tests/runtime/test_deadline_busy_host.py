"""Deadlines hold whatever the host's Python threads do (issue 12, item 7).

The old ticker slept a period between ticks and needed the GIL for each, so every GIL
hand-over added to the deadline: beside three busy Python threads a 1 s timeout took
5-10 s. Each test here only asks that the call *ends* with DeadlineExceeded within a
generous bound (8x the timeout, which other suites loading the same 2 cores never
reached), never how close to the timeout it lands: benchmarks/bench_deadline.py measures
that (1.0-1.07x).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import require
from rt_helpers import gate_policy, guest

from callgate.gates.app import AppGates
from callgate.gates.errors import DeadlineExceeded
from callgate.kernel.child import run_in_child
from callgate.native import FORCE_PURE_PYTHON, loader, native_available
from callgate.runtime import Limits, Plugin
from callgate.runtime.limits import SharedEngine
from callgate.runtime.loading import default_providers

TIMEOUT = 1.0
BOUND = 8.0  # seconds; the old ticker took 5-10 s here (4.2 s seen under heavy load)


@contextmanager
def busy_python_threads(count: int = 3) -> Iterator[None]:
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


def spinning_plugin(kind: str) -> Plugin:
    limits = Limits(timeout=TIMEOUT)
    if kind == "wasm loop":
        return Plugin(guest("hostile_spin"), limits=limits)
    gates = AppGates()
    gates.add("probe1", lambda call, a: a, params=("i64",), results=("i64",),
              uses_memory=False)
    return Plugin(guest("hostile_denied_loop"), providers=default_providers(), gates=gates,
                  policy=gate_policy("errno(EPERM)"), limits=limits)


def seconds_until_deadline(plugin: Plugin) -> float:
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        plugin.call_int("run")
    return time.monotonic() - start


@pytest.mark.parametrize("kind", ["wasm loop", "denied gate loop"])
def test_deadline_ends_the_call_beside_busy_python_threads(kind):
    with spinning_plugin(kind) as plugin, busy_python_threads():
        took = seconds_until_deadline(plugin)
    assert took < BOUND, f"a {TIMEOUT} s deadline ended the call after {took:.2f} s"


def test_the_ticker_is_the_native_one_unless_pure_python_is_asked_for():
    """The suite's CALLGATE_PURE_PYTHON=1 run must get the Python twin; any other run the
    native ticker (a failure under CI=true when the core was not built)."""
    path = SharedEngine.for_limits(Limits(timeout=TIMEOUT)).ticker.path
    if loader.native_status().forced:
        assert path == "python"
        return
    require(native_available(), "the native core (pip install -e . with a C compiler)")
    assert path == "native"


def test_the_python_twin_also_holds_the_deadline_beside_busy_threads():
    """CALLGATE_PURE_PYTHON=1 in a fresh interpreter: the Python ticker, which catches up
    on the ticks a GIL wait cost it."""
    here = Path(__file__).resolve().parent
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]
        from test_deadline_busy_host import *
        from callgate.runtime.limits import SharedEngine
        assert SharedEngine.for_limits(Limits(timeout=TIMEOUT)).ticker.path == "python"
        for kind in ("wasm loop", "denied gate loop"):
            with spinning_plugin(kind) as plugin, busy_python_threads():
                print(kind, seconds_until_deadline(plugin))
    """)
    env = {**os.environ, FORCE_PURE_PYTHON: "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        took = float(line.rsplit(" ", 1)[1])
        assert took < BOUND, f"{line}: the Python twin is {took:.2f} s late"


def test_a_forked_child_gets_its_own_ticker():
    """fork keeps only the forking thread: the child must start a ticker of its own, or
    its deadlines never fire (the guest would spin until run_in_child kills it)."""
    with Plugin(guest("hostile_spin"), limits=Limits(timeout=0.2)) as plugin:
        with pytest.raises(DeadlineExceeded):  # the parent's ticker is running
            plugin.call_int("run")

        def in_child() -> str:
            try:
                plugin.call_int("run")
            except DeadlineExceeded:
                return "deadline"
            return "returned"

        result = run_in_child(in_child, timeout=60)
        assert result.value == "deadline", result
        with pytest.raises(DeadlineExceeded):  # and the parent's still works
            plugin.call_int("run")


@pytest.mark.parametrize("pure", ["0", "1"], ids=["default-ticker", "python-twin"])
def test_the_interpreter_exits_with_deadlines_running(pure: str) -> None:
    """Plugins left open, and one still spinning in a daemon thread, when the interpreter
    exits: finalization frees engines and ends daemon threads (the twin's among them,
    possibly mid-tick) while the ticker may still be ticking. The process must exit
    cleanly, neither hang on a lock a dead thread held nor crash on a freed engine."""
    code = textwrap.dedent(f"""
        import threading, time
        from callgate.runtime import Limits, Plugin
        spin = {str(guest("hostile_spin"))!r}
        left_open = [Plugin(spin, limits=Limits(timeout=0.05)) for _ in range(3)]
        busy = Plugin(spin, limits=Limits(timeout=0.3, stack=256 * 1024))
        threading.Thread(target=busy.call_int, args=("run",), daemon=True).start()
        time.sleep(0.1)
        print("exiting")
    """)
    env = {**os.environ, FORCE_PURE_PYTHON: pure}
    for _ in range(3):
        done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert (done.returncode, done.stdout) == (0, "exiting\n"), done.stderr
