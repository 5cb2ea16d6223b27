"""The gate<->host contract (callgate.gates.host.GateHost) holds under both plugin kinds.

One app gate that follows the documented contract - charge output before storing,
wait no longer than the deadline allows - runs in-process under ``Plugin`` and in
the parent of a locked-down worker under ``IsolatedPlugin``; both must decide alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate import GateHost, IsolatedPlugin, Limits, OutputLimitExceeded, Plugin
from callgate.gates.app import AppGates

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "wasm"
POLICY = """
[gates]
default = "kill_process"
[[gates.rules]]
names = ["kv_get", "kv_put", "fd_write"]
action = "allow"
[kernel]
default = "kill_process"
"""
LIMITS = Limits(output=64, timeout=30.0)


def contract_gates(seen: list[tuple[bool, float | None]]) -> AppGates:
    store: dict[bytes, bytes] = {}
    gates = AppGates()

    @gates.gate(params=("i32",) * 4, results=("i32",))
    def kv_put(call, key_ptr, key_len, val_ptr, val_len):  # type: ignore[no-untyped-def]
        host = call.plugin
        seen.append((isinstance(host, GateHost), host.remaining_time()))
        host.check_deadline()
        value = call.mem.read(val_ptr, val_len)
        host.charge_output(len(value))  # before storing, as the contract says
        store[call.mem.read(key_ptr, key_len)] = value
        return 0

    @gates.gate(params=("i32",) * 4, results=("i32",))
    def kv_get(call, key_ptr, key_len, val_ptr, val_cap):  # type: ignore[no-untyped-def]
        value = store.get(call.mem.read(key_ptr, key_len), b"")
        call.mem.write(val_ptr, value[:val_cap])
        return len(value)

    return gates


def plugin(kind: str, seen: list[tuple[bool, float | None]]) -> Plugin | IsolatedPlugin:
    if kind == "in-process":
        return Plugin(GUESTS / "kvstore.wasm", policy=POLICY, gates=contract_gates(seen),
                      limits=LIMITS)
    return IsolatedPlugin(GUESTS / "kvstore.wasm", policy=POLICY, gates=contract_gates(seen),
                          limits=LIMITS)


@pytest.mark.parametrize("kind", ["in-process", "isolated"])
def test_a_contract_following_gate_behaves_alike_under_both_plugin_kinds(kind: str) -> None:
    seen: list[tuple[bool, float | None]] = []
    with plugin(kind, seen) as p:
        assert p.call("put", b"colour=blue") == b"ok"
        assert p.call("get", b"colour") == b"blue"
        # 60 bytes charged by the gate plus the 2-byte answer pass the 64-byte budget.
        with pytest.raises(OutputLimitExceeded, match=r"Limits\.output"):
            p.call("put", b"k=" + b"x" * 63)
        assert p.call("put", b"k=" + b"y" * 40) == b"ok"  # the next call has a fresh budget
    assert [is_host for is_host, _ in seen] == [True, True, True]
    # The deadline travels with the call: what the gate sees is what is left of 30 s.
    assert all(left is not None and 0 < left <= 30.0 for _, left in seen)
