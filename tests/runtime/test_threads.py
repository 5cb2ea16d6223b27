"""Independent plugins run concurrently from several Python threads.

No timing: concurrency is shown by a rendezvous that only completes if two
plugins are inside wasm/gates at the same time, and isolation by every thread
getting exactly its own results, errors and verdicts.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from rt_helpers import gate_policy, guest

from callgate.gates.app import AppGates
from callgate.gates.errors import FuelExhausted, PluginKilled, PluginPoisoned
from callgate.runtime import Limits, Plugin

WAIT = 30.0  # generous: only reached if the runtime serialised the plugins (a failure)


def offset_gates(offset: int) -> AppGates:
    gates = AppGates()
    gates.add("probe1", lambda call, a: a + offset, params=("i64",), results=("i64",),
              uses_memory=False)
    return gates


def test_two_plugins_are_inside_their_gates_at_the_same_time():
    arrived = [threading.Event(), threading.Event()]

    def rendezvous(me: int):
        def probe1(call, a):
            arrived[me].set()
            return 1 if arrived[1 - me].wait(WAIT) else 0
        gates = AppGates()
        gates.add("probe1", probe1, params=("i64",), results=("i64",), uses_memory=False)
        return gates

    plugins = [Plugin(guest("gatecall1"), gates=rendezvous(i)) for i in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda p: p.call_int("once", 0), plugins))
    finally:
        for p in plugins:
            p.close()
    assert results == [1, 1]


def test_many_threads_each_get_their_own_results_errors_and_verdicts():
    n = 6

    def work(i: int):
        kind = i % 3
        if kind == 0:  # plain gated work
            with Plugin(guest("gatecall1"), gates=offset_gates(i)) as p:
                return p.call_int("run", 3000) == sum(range(3000)) + 3000 * i
        if kind == 1:  # a limit fires in this thread only
            with Plugin(guest("hostile_spin"), limits=Limits(fuel=500_000)) as p:
                with pytest.raises(FuelExhausted):
                    p.call_int("run")
                return True
        with Plugin(guest("gatecall1"), gates=offset_gates(i),  # killed in this thread only
                    policy=gate_policy("kill_process")) as p:
            with pytest.raises(PluginKilled):
                p.call_int("once", 1)
            with pytest.raises(PluginPoisoned):
                p.call_int("once", 1)
            return True

    for _ in range(3):
        with ThreadPoolExecutor(n) as pool:
            assert all(pool.map(work, range(n)))


def test_one_plugin_shared_by_threads_serialises_its_calls():
    calls = []

    def probe1(call, a):
        calls.append(a)
        return a

    gates = AppGates()
    gates.add("probe1", probe1, params=("i64",), results=("i64",), uses_memory=False)
    with Plugin(guest("gatecall1"), gates=gates) as p, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda k: p.call_int("run", 500), range(8)))
    assert results == [sum(range(500))] * 8
    assert len(calls) == 8 * 500


def test_exceptions_stay_with_the_plugin_that_raised_them():
    def failing(call, a):
        raise KeyError(f"plugin-{a}")

    gates = AppGates()
    gates.add("probe1", failing, params=("i64",), results=("i64",), uses_memory=False)

    def work(i: int) -> str:
        with Plugin(guest("gatecall1"), gates=gates) as p:
            try:
                p.call_int("once", i)
            except KeyError as exc:
                return str(exc.args[0])
        return "no error"

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(8))) == [f"plugin-{i}" for i in range(8)]
