"""The hostile host side of the reentrancy attacks: a gate that re-enters its own plugin.

Shared by tests/runtime/test_reentrancy.py and the hostile soak (test_hostile.py).
"""

from __future__ import annotations

import contextlib
import time

from rt_helpers import wat

from callgate import Limits, Plugin, PluginError
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
