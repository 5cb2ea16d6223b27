"""Each limit stops a plugin with its own typed error; the host and other plugins carry on."""

from __future__ import annotations

import pytest
from rt_helpers import guest, wat

from callgate.gates.app import AppGates
from callgate.gates.errors import (
    DeadlineExceeded,
    FuelExhausted,
    InstanceLimitExceeded,
    LimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    StackOverflow,
    TableLimitExceeded,
)
from callgate.runtime import Limits, Plugin

PAGE = 65536


def healthy() -> None:
    """Another plugin still works after a limit fired."""
    with Plugin(guest("hello")) as other:
        assert other.call_int("add", 40, 2) == 42


def test_fuel_exhausted_per_call_and_the_plugin_stays_usable():
    with Plugin(guest("hostile_spin"), limits=Limits(fuel=100_000)) as p:
        for _ in range(3):  # each call starts with a full budget
            with pytest.raises(FuelExhausted):
                p.call_int("run")
    with Plugin(guest("hello"), limits=Limits(fuel=100_000)) as p:
        assert p.call_int("add", 1, 2) == 3  # a short call fits its budget, again and again
        assert p.call_int("add", 1, 2) == 3
    healthy()


def test_deadline_interrupts_a_spinning_guest():
    with Plugin(guest("hostile_spin"), limits=Limits(timeout=0.05)) as p:
        with pytest.raises(DeadlineExceeded):
            p.call_int("run")
        with pytest.raises(DeadlineExceeded):
            p.call_int("run")
    healthy()


def test_deadline_does_not_fire_for_a_plugin_without_one_on_the_same_engine():
    # Both use the default engine; the first one's ticker advances the shared epoch.
    with Plugin(guest("hostile_spin"), limits=Limits(timeout=0.02)) as spinner, \
            Plugin(guest("gatecall1"), gates=_probe1()) as free:
        with pytest.raises(DeadlineExceeded):
            spinner.call_int("run")
        assert free.call_int("run", 20000) == sum(range(20000))


def _probe1() -> AppGates:
    gates = AppGates()
    gates.add("probe1", lambda call, a: a, params=("i64",), results=("i64",),
              uses_memory=False)
    return gates


def test_stack_overflow_is_typed_and_the_host_stack_is_untouched():
    with Plugin(guest("hostile_recursion"), limits=Limits(stack=64 * 1024)) as p:
        with pytest.raises(StackOverflow):
            p.call_int("run")
        with pytest.raises(StackOverflow):
            p.call_int("run")
    healthy()


def test_memory_growth_stops_at_the_cap():
    cap = 4 * 1024 * 1024
    with Plugin(guest("hostile_membomb"), limits=Limits(memory=cap, fuel=10**9)) as p:
        pages = p.call_int("grow_all")
        assert 1 <= pages <= cap // PAGE
        memory = p.memory()
        assert memory is not None and memory.size <= cap
    healthy()


def test_a_module_whose_minimum_memory_exceeds_the_cap_is_refused():
    with pytest.raises(MemoryLimitExceeded):
        Plugin(guest("hostile_big_memory"))
    healthy()


def test_table_caps():
    with pytest.raises(TableLimitExceeded):
        Plugin(guest("hostile_big_table"))
    with Plugin(guest("hostile_tablebomb"), limits=Limits(table_elements=5000, fuel=10**8)) as p:
        assert p.call_int("grow_all") <= 5000
    module = wat("(module (table 1 funcref) (table 1 funcref))")
    with pytest.raises(TableLimitExceeded):
        Plugin(module, limits=Limits(tables=1))
    healthy()


def test_instance_and_memory_count_caps():
    with pytest.raises(InstanceLimitExceeded):
        Plugin(wat("(module)"), limits=Limits(instances=0))
    healthy()


def test_output_cap_on_bytes_results_is_checked_from_the_length():
    with Plugin(guest("hello"), limits=Limits(output=4)) as p:
        assert p.call("echo", b"abcd") == b"abcd"
        with pytest.raises(OutputLimitExceeded):
            p.call("echo", b"abcde")
        assert p.call("echo", b"ok") == b"ok"


def test_output_cap_on_bytes_a_gate_writes():
    gates = AppGates()

    @gates.gate(params=("i64",), results=("i64",), uses_memory=False)
    def probe1(call, n):
        call.plugin.charge_output(n)  # as fd_write does before writing n bytes
        return 0

    with Plugin(guest("gatecall1"), gates=gates, limits=Limits(output=1000)) as p:
        assert p.call_int("once", 1000) == 0
        assert p.call_int("once", 1000) == 0  # the budget is per call
        with pytest.raises(OutputLimitExceeded):
            p.call_int("run", 100)  # 0 + 1 + … + 99 > 1000 within one call


def test_every_limit_error_is_a_limit_exceeded():
    for cls in (FuelExhausted, DeadlineExceeded, MemoryLimitExceeded, TableLimitExceeded,
                InstanceLimitExceeded, StackOverflow, OutputLimitExceeded):
        assert issubclass(cls, LimitExceeded)
    assert len({FuelExhausted, DeadlineExceeded, MemoryLimitExceeded, StackOverflow,
                OutputLimitExceeded}) == 5


@pytest.mark.parametrize("bad", [{"fuel": -1}, {"timeout": 0}, {"memory": "big"},
                                 {"stack": 10}, {"output": -5}])
def test_bad_limits_are_refused_up_front(bad):
    with pytest.raises(ValueError, match="Limits"):
        Limits(**bad)


def test_limits_apply_to_a_start_function_during_load():
    module = wat("(module (func $spin (loop (br 0))) (start $spin))")
    with pytest.raises(FuelExhausted):
        Plugin(module, limits=Limits(fuel=10_000))
    with pytest.raises(DeadlineExceeded):
        Plugin(module, limits=Limits(timeout=0.02))
    healthy()
