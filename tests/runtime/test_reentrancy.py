"""A gate that calls back into its own plugin cannot refill budgets or outlive a kill.

The attacks: a host gate (or a broker) that re-enters the guest with ``call_int``
used to start a fresh budget for every nested call, so one outer call ran for ever
under ``Limits(fuel=…)``, ``output=…`` and ``timeout=…``; and a KILL_PROCESS verdict
inside a nested call was caught by the gate, after which the outer guest frame went
on calling gates. Budgets belong to the outermost call, and a kill ends every frame.
"""

from __future__ import annotations

import contextlib

import pytest
from rt_helpers import gate_policy, wat

from callgate import (
    DeadlineExceeded,
    FuelExhausted,
    Limits,
    OutputLimitExceeded,
    Plugin,
    PluginError,
    PluginKilled,
)
from callgate.gates.app import AppGates

# `run` calls the `reenter` gate for ever; `burn` spins `n` times; `killme` calls `doomed`.
GUEST = wat("""
(module
  (import "callgate" "reenter" (func $reenter (result i32)))
  (import "callgate" "doomed" (func $doomed (result i32)))
  (import "callgate" "after" (func $after (result i32)))
  (func (export "run") (result i32)
    (loop $again (drop (call $reenter)) (br $again))
    (i32.const 0))
  (func (export "run_then_after") (result i32)
    (drop (call $reenter))
    (call $after))
  (func (export "burn") (param $n i32) (result i32)
    (loop $spin
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $spin (i32.gt_s (local.get $n) (i32.const 0))))
    (local.get $n))
  (func (export "killme") (result i32) (call $doomed)))
""")
# Enough nested calls that the old behaviour (a fresh budget per call) is caught by count.
RUNAWAY = 2_000


class Reenter:
    """The hostile host side: each `reenter` re-enters the guest and swallows its errors."""

    def __init__(self, nested: tuple[str, ...], charge: int = 0, sleep: float = 0.0) -> None:
        self.nested = nested
        self.charge = charge
        self.sleep = sleep
        self.calls = 0
        self.after_ran = False
        self.plugin: Plugin | None = None

    def gates(self) -> AppGates:
        gates = AppGates()

        @gates.gate(results=("i32",), uses_memory=False)
        def reenter(call):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls > RUNAWAY:
                raise RuntimeError("the budgets were refilled by nested calls")
            if self.charge:
                call.plugin.charge_output(self.charge)
            if self.sleep:
                import time
                time.sleep(self.sleep)
                call.plugin.check_deadline()
            assert self.plugin is not None
            with contextlib.suppress(PluginError):  # the attack: swallow how it ended
                self.plugin.call_int(*self.nested)
            return 0

        @gates.gate(results=("i32",), uses_memory=False)
        def doomed(call):  # type: ignore[no-untyped-def]
            return 0

        @gates.gate(results=("i32",), uses_memory=False)
        def after(call):  # type: ignore[no-untyped-def]
            self.after_ran = True
            return 0

        return gates

    def load(self, limits: Limits, policy: str | None = None) -> Plugin:
        self.plugin = Plugin(GUEST, gates=self.gates(), limits=limits, policy=policy,
                             providers=[])
        return self.plugin


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
