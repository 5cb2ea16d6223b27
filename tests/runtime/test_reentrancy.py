"""A gate that calls back into its own plugin cannot refill budgets or outlive a kill.

The attacks: a host gate (or a broker) that re-enters the guest with ``call_int``
used to start a fresh budget for every nested call, so one outer call ran for ever
under ``Limits(fuel=…)``, ``output=…`` and ``timeout=…``; and a KILL_PROCESS verdict
inside a nested call was caught by the gate, after which the outer guest frame went
on calling gates. Budgets belong to the outermost call, and a kill ends every frame.
"""

from __future__ import annotations

import pytest
from reentry_host import RUNAWAY, Reenter
from rt_helpers import gate_policy

from callgate import (
    DeadlineExceeded,
    FuelExhausted,
    Limits,
    OutputLimitExceeded,
    PluginKilled,
)


def test_nested_calls_spend_the_outer_calls_fuel() -> None:
    host = Reenter(("burn", 20_000))
    with host.load(Limits(fuel=500_000)) as p:
        with pytest.raises(FuelExhausted):
            p.call_int("run")
        # 500k fuel covers a few dozen 20k-iteration burns, never thousands.
        assert 1 <= host.calls < 200
        assert p.call_int("burn", 10) == 0  # the next outermost call has a fresh budget


def test_nested_calls_spend_the_outer_calls_output_budget() -> None:
    host = Reenter(("burn", 1), charge=100)
    with host.load(Limits(output=1024)) as p:
        with pytest.raises(OutputLimitExceeded):
            p.call_int("run")
        assert host.calls == 11  # 10 × 100 bytes fit in 1024, the 11th passes it


def test_nested_calls_do_not_push_the_outer_deadline_back() -> None:
    host = Reenter(("burn", 1), sleep=0.02)
    with host.load(Limits(timeout=0.5)) as p:
        with pytest.raises(DeadlineExceeded):
            p.call_int("run")
        assert host.calls < RUNAWAY


def test_a_kill_in_a_nested_call_ends_the_outermost_call_and_no_gate_runs_after_it() -> None:
    policy = gate_policy("allow", 'names = ["doomed"]\naction = "kill_process"',
                         app_gates=("reenter", "doomed", "after"))
    host = Reenter(("killme",))
    with host.load(Limits(), policy) as p:
        with pytest.raises(PluginKilled) as killed:
            p.call_int("run_then_after")
        assert killed.value.gate == "doomed"
        assert host.calls == 1 and not host.after_ran  # the outer frame's next gate never ran
        assert p.poisoned
