"""The timing options enforced on real plugins: coarse clocks in the clock gates, jitter in
dispatch (callgate/runtime/timing.py), and the isolated plugin refusing what it cannot apply."""

from __future__ import annotations

import time

import pytest

from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.isolation.isolated import IsolatedPlugin, IsolationError
from callgate.policy import load_policy_text
from callgate.runtime.plugin import Plugin
from callgate.runtime.timing import jittered
from callgate.teach.labs.runner import guest_path

COVERT = guest_path("covert")


def plugin(extra: str = "") -> Plugin:
    policy = load_policy_text('[gates]\ndefault = "allow"\n' + extra).policy
    return Plugin(COVERT, policy=policy, providers=[WasiProvider(WasiConfig())])


def test_coarse_clock_steps_and_reports_its_resolution() -> None:
    with plugin('[gates.clocks]\nresolution = "1ms"\n') as p:
        times = [p.call_int("now") for _ in range(200)]
        assert all(isinstance(t, int) and t > 0 and t % 1_000_000 == 0 for t in times)
        assert p.call_int("res") == 1_000_000
        # Counting reads from one tick to the next needs the clock to move at all.
        edge = p.call_int("edge")
        assert isinstance(edge, int) and edge % 1_000_000 == 0


def test_host_clock_unchanged_without_the_option() -> None:
    with plugin() as p:
        times = [p.call_int("now") for _ in range(50)]
        res = p.call_int("res")
        assert isinstance(res, int) and res < 1_000_000
        assert len(set(times)) > 1  # ns steps: 50 reads are not all in one tick
        assert any(isinstance(t, int) and t % 1000 for t in times)


def test_resolution_finer_than_the_host_reports_the_host() -> None:
    with plugin('[gates.clocks]\nresolution = "1ns"\n') as p:
        res = p.call_int("res")
        assert isinstance(res, int) and res >= 1


def test_jittered_waits_what_it_draws_then_calls() -> None:
    calls = []

    def callback(env: object, caller: object, raw: object, n: int) -> str:
        calls.append((env, caller, raw, n))
        return "result"

    cb = jittered(callback, 2_000_000, draw=lambda: 0.5)
    started = time.perf_counter_ns()
    assert cb(1, 2, 3, 4) == "result"
    assert time.perf_counter_ns() - started >= 1_000_000  # a lower bound: no race
    assert calls == [(1, 2, 3, 4)]
    zero = jittered(callback, 10**9, draw=lambda: 0.0)
    started = time.perf_counter_ns()
    zero(0, 0, 0, 0)
    assert time.perf_counter_ns() - started < 10**9 // 2


def test_jitter_slows_every_gate_call_of_a_real_plugin() -> None:
    calls = 200
    with plugin('jitter = "100us"\n') as p:
        assert getattr(p, "_native", None) is None  # timing options: every gate in Python
        started = time.perf_counter()
        for _ in range(calls):
            p.call_int("now")
        spent = time.perf_counter() - started
    # Each call waits U[0, 100us): 200 of them sum to ~10 ms (sd ~0.4 ms); never under 5.
    assert spent >= 0.005


def test_denied_calls_wait_too() -> None:
    policy = ('jitter = "100us"\n[[gates.rules]]\nnames = ["clock_time_get"]\n'
              'action = "errno(EPERM)"\n')
    with plugin(policy) as p:
        started = time.perf_counter()
        assert all(p.call_int("now") == -1 for _ in range(200))
        assert time.perf_counter() - started >= 0.005


def test_isolated_plugin_refuses_timing_options() -> None:
    policy = load_policy_text('[gates]\ndefault = "allow"\njitter = "1us"\n').policy
    with pytest.raises(IsolationError, match="only an in-process Plugin applies"):
        IsolatedPlugin(COVERT, policy=policy)
