"""Checks are compiled in only for the limits a plugin asks for (issue 13 item 4).

Epoch interruption (what ``Limits.timeout`` needs) and fuel (``Limits.fuel``) put a check
in every loop and function of the compiled code. A plugin that asks for neither gets an
engine with neither, so its code is the code plain wasmtime compiles - wasmtime itself
says so: it deserializes a module only into an engine with the same settings. Speed is
measured in benchmarks/bench_compute.py; these tests check the configuration behind it,
and that a guest without a timeout can still be stopped, by fuel.
"""

from __future__ import annotations

import time

import pytest
import wasmtime
from rt_helpers import guest

from callgate import Limits, Plugin
from callgate.gates.errors import DeadlineExceeded, FuelExhausted

COMPUTE = guest("compute")


def interp_result(rounds: int) -> int:
    """What compute.wasm's interp(rounds) returns, computed here (signed, as wasm reads it)."""
    acc = 0
    for n in range(200, 0, -1):
        acc = ((acc * 3) ^ n) + 7 & 0xFFFFFFFF
    total = acc * rounds & 0xFFFFFFFF
    return total - (1 << 32) if total >= 1 << 31 else total


def plugin(limits: Limits | None = None) -> Plugin:
    return Plugin(COMPUTE, providers=[], limits=limits, compile_cache=False)


@pytest.mark.parametrize(("limits", "fuel", "epoch"), [
    (None, False, False),
    (Limits(memory=None, stack=1 << 20), False, False),
    (Limits(timeout=5.0), False, True),
    (Limits(fuel=1000), True, False),
    (Limits(fuel=1000, timeout=5.0), True, True),
])
def test_an_engine_has_only_the_checks_its_limits_need(limits: Limits | None, fuel: bool,
                                                       epoch: bool) -> None:
    with plugin(limits) as p:
        assert (p._shared.key.fuel, p._shared.key.epoch) == (fuel, epoch)
        assert p._shared.key.tag == f"fuel={int(fuel)};epoch={int(epoch)};" \
            f"stack={p.limits.stack}"  # and the compile cache keeps them apart


def test_a_cancellable_plugin_needs_epochs_even_without_a_timeout() -> None:
    with Plugin(COMPUTE, providers=[], compile_cache=False, cancellable=True) as p:
        assert (p._shared.key.fuel, p._shared.key.epoch) == (False, True)


def test_without_limits_the_code_is_plain_wasmtimes() -> None:
    with plugin() as p:
        compiled = bytes(p.module.serialize())
    # wasmtime refuses a module compiled with other checks than its engine's
    assert isinstance(wasmtime.Module.deserialize(wasmtime.Engine(), compiled), wasmtime.Module)
    config = wasmtime.Config()
    config.epoch_interruption = True
    with pytest.raises(wasmtime.WasmtimeError, match="without epoch interruption"):
        wasmtime.Module.deserialize(wasmtime.Engine(config), compiled)
    with plugin(Limits(timeout=5.0)) as p, \
            pytest.raises(wasmtime.WasmtimeError, match="with epoch interruption"):
        wasmtime.Module.deserialize(wasmtime.Engine(), bytes(p.module.serialize()))


def test_a_compute_bound_guest_without_timeout_is_stopped_by_fuel() -> None:
    with plugin(Limits(fuel=2_000_000)) as p:
        assert not p._shared.key.epoch
        started = time.monotonic()
        with pytest.raises(FuelExhausted):
            p.call_int("sieve", 1_000_000)  # hours of work without the budget
        assert time.monotonic() - started < 30
        assert p.call_int("interp", 3) == interp_result(3)  # a fresh budget per call


def test_a_compute_bound_guest_with_a_timeout_is_stopped_by_its_deadline() -> None:
    with plugin(Limits(timeout=0.3)) as p:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            p.call_int("sieve", 1_000_000)
        assert time.monotonic() - started < 30
        assert p.call_int("interp", 2) == interp_result(2)


def test_without_limits_it_runs_to_the_end() -> None:
    with plugin() as p:
        assert p.call_int("interp", 5) == interp_result(5)
        assert p.call_int("sieve", 1) == 82025  # primes below 2**20
