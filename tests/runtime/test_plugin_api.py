"""The Plugin API: loading and refusing modules, app gates with guest memory, the bytes ABI,
integer calls, counters, closing."""

from __future__ import annotations

import json

import pytest
from kv_host import ENOENT, kv_gates
from rt_helpers import gate_policy, guest, wat

from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.gates.app import AppGateError, AppGates
from callgate.gates.errors import (
    AbiError,
    ImportRefused,
    PluginClosed,
    PluginLoadError,
)
from callgate.gates.memory import GuestMemoryError
from callgate.gates.table import GateTable, GateTableError
from callgate.policy import load_policy
from callgate.runtime import Plugin

EPERM = WASI_ERRNO["EPERM"]


# -- a C plugin using app-defined gates ------------------------------------------------------

def test_kvstore_plugin_round_trips_through_app_gates():
    store: dict[bytes, bytes] = {}
    with Plugin(guest("kvstore"), gates=kv_gates(store)) as p:
        assert p.call("put", b"colour=blue") == b"ok"
        assert store == {b"colour": b"blue"}
        assert p.call("get", b"colour") == b"blue"
        assert p.call("get", b"missing") == f"error {ENOENT}".encode()
        big = b"x" * 5000
        assert p.call("put", b"big=" + big) == b"ok"
        assert p.call("get", b"big") == big  # the guest retries with a bigger buffer
        assert p.counters["kv_get"]["allow"] >= 3


def test_kvstore_policy_denies_writes_with_errno_the_guest_reports():
    store = {b"k": b"v"}
    policy = gate_policy("allow", 'names = ["kv_put"]\naction = "errno(EPERM)"',
                         app_gates=("kv_get", "kv_put"))
    with Plugin(guest("kvstore"), gates=kv_gates(store), policy=policy) as p:
        assert p.call("put", b"k=changed") == f"error {EPERM}".encode()
        assert p.call("get", b"k") == b"v"
    assert store == {b"k": b"v"}


def test_a_gate_given_a_bad_pointer_raises_guest_memory_error():
    gates = AppGates()

    @gates.gate(params=("i32", "i32"), results=("i32",))
    def peek(call, ptr, length):
        return len(call.memory.read(ptr, length))

    module = wat('(module (import "callgate" "peek" (func $p (param i32 i32) (result i32)))'
                 ' (memory (export "memory") 1)'
                 ' (func (export "go") (param i32 i32) (result i32)'
                 ' (call $p (local.get 0) (local.get 1))))')
    with Plugin(module, gates=gates) as p:
        assert p.call_int("go", 0x100, 16) == 16
        for ptr, length in [(0xFFFF, 2), (0xFFFFFFF0, 0x20), (0, 0xFFFFFFFF), (0x10000, 0)]:
            if length == 0:
                assert p.call_int("go", ptr, length) == 0  # an empty range at the end is fine
                continue
            with pytest.raises(GuestMemoryError):
                p.call_int("go", ptr, length)


# -- load-time refusal -----------------------------------------------------------------------

def test_every_unknown_import_is_listed_at_once():
    module = wat('(module (import "env" "a" (func)) (import "callgate" "nope" (func))'
                 ' (import "env" "mem" (memory 1)) (import "env" "g" (global i32)))')
    with pytest.raises(ImportRefused) as info:
        Plugin(module, gates=AppGates())
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "import #0 env.a", "import #1 callgate.nope", "import #2 env.mem", "import #3 env.g"]
    assert "memory import" in problems[2] and "global import" in problems[3]
    assert "callgate gates" in str(info.value)


def test_signature_mismatch_names_both_signatures():
    gates = AppGates()
    gates.add("probe1", lambda call, a: a, params=("i64",), results=("i64",))
    module = wat('(module (import "callgate" "probe1" (func (param i32) (result i32))))')
    with pytest.raises(ImportRefused) as info:
        Plugin(module, gates=gates)
    (line,) = info.value.problems
    assert "declared (i32) -> (i32)" in line and "gate is (i64) -> (i64)" in line


@pytest.mark.parametrize("data", [b"", b"garbage", b"\0asm\x01\0\0\0\xff", b"(module (oops))"])
def test_invalid_modules_are_refused_with_a_load_error(data):
    with pytest.raises(PluginLoadError):
        Plugin(data)


def test_missing_file_is_a_load_error(tmp_path):
    with pytest.raises(PluginLoadError, match="cannot read"):
        Plugin(tmp_path / "absent.wasm")


def test_a_start_function_runs_through_gates_during_load():
    calls = []
    gates = AppGates()
    gates.add("hello", lambda call: calls.append("hello"), uses_memory=False)
    module = wat('(module (import "callgate" "hello" (func $h)) (start $h))')
    with Plugin(module, gates=gates):
        assert calls == ["hello"]
    calls.clear()
    policy = gate_policy("kill_process")
    with pytest.raises(Exception, match="hello"):
        Plugin(module, gates=gates, policy=policy)
    assert calls == []


def test_policy_sources_file_text_and_model(tmp_path):
    text = gate_policy("errno(EPERM)")
    path = tmp_path / "p.toml"
    path.write_text(text)
    gates = AppGates()
    gates.add("probe1", lambda call, a: a, params=("i64",), results=("i64",))
    for source in (path, str(path), text, load_policy(text)):
        with Plugin(guest("gatecall1"), gates=gates, policy=source) as p:
            assert p.call_int("once", 1) == -EPERM


def test_a_policy_without_a_gates_section_is_refused():
    text = '[kernel]\ndefault = "allow"\n'
    with pytest.raises(PluginLoadError, match=r"\[gates\]"):
        Plugin(guest("hello"), policy=text)


# -- app gate registration ------------------------------------------------------------------

def test_app_gate_numbers_are_pinned_or_allocated_in_the_reserved_range():
    gates = AppGates()
    a = gates.add("a", lambda c: None)
    b = gates.add("b", lambda c: None, number=0x1234)
    c = gates.add("c", lambda c: None)
    assert (a.number, b.number, c.number) == (0x1000, 0x1234, 0x1001)
    for bad in [dict(number=0xFFF), dict(number=0x2000), dict(number=0x1234)]:
        with pytest.raises(AppGateError):
            gates.add("d", lambda c: None, **bad)
    with pytest.raises(AppGateError, match="WASI"):
        gates.add("fd_write", lambda c: None)
    with pytest.raises(AppGateError, match="type"):
        gates.add("e", lambda c: None, params=("i8",))
    with pytest.raises(AppGateError, match="already"):
        gates.add("a", lambda c: None)


def test_gate_table_refuses_clashing_names_and_numbers():
    one, two = AppGates(), AppGates()
    one.add("same", lambda c: None)
    two.add("same", lambda c: None, number=0x1500)
    with pytest.raises(GateTableError, match="serve module"):
        GateTable([one, two])  # two providers for module "callgate"


def test_app_gate_state_is_per_plugin():
    gates = AppGates()

    @gates.gate(params=("i64",), results=("i64",), uses_memory=False)
    def probe1(call, a):
        call.state["n"] = call.state.get("n", 0) + a
        return call.state["n"]

    with Plugin(guest("gatecall1"), gates=gates) as p1, \
            Plugin(guest("gatecall1"), gates=gates) as p2:
        assert p1.call_int("once", 5) == 5
        assert p1.call_int("once", 5) == 10
        assert p2.call_int("once", 1) == 1


# -- calls -----------------------------------------------------------------------------------

def test_call_int_signed_results_and_argument_checks():
    with Plugin(guest("hello")) as p:
        assert p.call_int("add", 2, 3) == 5
        assert p.call_int("add", -5, 3) == -2
        assert p.call_int("add", 2**63 - 1, 1) == -(2**63)  # wraps like i64.add
        with pytest.raises(TypeError, match="2 argument"):
            p.call_int("add", 1)
        with pytest.raises(AbiError, match="exports no function 'nope'"):
            p.call_int("nope")
        with pytest.raises(AbiError, match="exports no function 'memory'"):
            p.call_int("memory")


def test_bytes_abi_guests():
    with Plugin(guest("wordcount")) as p:
        out = json.loads(p.call("wordcount", b"one two\nthree\n"))
        assert out == {"lines": 2, "words": 3, "bytes": 14}
        assert json.loads(p.call("wordcount", b"")) == {"lines": 0, "words": 0, "bytes": 0}
    with Plugin(guest("upper")) as p:
        assert p.call("upper", b"Hello, World") == b"HELLO, WORLD"
        data = bytes(range(256)) * 1000
        assert p.call("upper", data) == data.upper()
    with Plugin(guest("hello")) as p:
        assert p.call("echo", memoryview(b"view")) == b"view"


def test_bytes_call_on_a_non_bytes_export_is_an_abi_error():
    with Plugin(guest("hello")) as p, pytest.raises(AbiError, match=r"\(i64, i64\)"):
        p.call("add", b"x")


def test_close_is_idempotent_and_calls_after_close_raise():
    p = Plugin(guest("hello"))
    p.close()
    p.close()
    assert p.closed
    with pytest.raises(PluginClosed):
        p.call_int("add", 1, 2)
    with pytest.raises(PluginClosed):
        p.call("echo", b"x")


def test_counters_per_gate_and_verdict():
    gates = AppGates()
    gates.add("probe1", lambda call, a: a, params=("i64",), results=("i64",))
    policy = gate_policy(
        "allow", 'names = ["probe1"]\naction = "errno(EPERM)"\n'
        'args = [{index = 0, op = "ge", value = 5}]', app_gates=("probe1",))
    with Plugin(guest("gatecall1"), gates=gates, policy=policy) as p:
        p.call_int("run", 8)
        counts = p.counters["probe1"]
        assert (counts["allow"], counts["errno"]) == (5, 3)
        assert sum(counts.values()) == 8


def test_closing_a_plugin_from_inside_its_own_gate_is_refused():
    from callgate.gates.errors import PluginError
    gates = AppGates()
    holder = {}

    @gates.gate(params=("i64",), results=("i64",), uses_memory=False)
    def probe1(call, a):
        holder["p"].close()
        return a

    with Plugin(guest("gatecall1"), gates=gates) as p:
        holder["p"] = p
        with pytest.raises(PluginError, match="inside one of its own calls"):
            p.call_int("once", 1)
        assert not p.closed
        assert p.call_int("run", 0) == 0


def test_failed_loads_leave_no_open_audit_file(tmp_path):
    import os

    from callgate.gates.errors import MemoryLimitExceeded
    audit = tmp_path / "a.jsonl"

    def holding_it() -> list[str]:  # our fds open on the audit file (others come and go)
        fds = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == str(audit):
                    fds.append(fd)
            except OSError:
                pass  # closed while we looked
        return fds

    for module in (b"garbage", wat('(module (import "env" "x" (func)))'),
                   wat("(module (memory 70000))"), wat("(module (memory 5000))")):
        with pytest.raises((PluginLoadError, MemoryLimitExceeded)):
            Plugin(module, audit=audit)
        assert holding_it() == []


def test_interpreter_mode_runs_the_reference_interpreter_on_every_call(monkeypatch):
    import callgate.runtime.filter_plan as plugin_module

    records = []
    real = plugin_module.interpret

    def spy(program, data):
        records.append(data)
        return real(program, data)

    monkeypatch.setattr(plugin_module, "interpret", spy)
    gates = AppGates()
    gates.add("probe1", lambda call, a: a + 1, params=("i64",), results=("i64",),
              number=0x1001, uses_memory=False)
    policy = gate_policy("errno(EPERM)", app_gates=("probe1",))  # constant: no cache used
    for mode, interpreted in (("compiled", 0), ("interpreter", 3)):
        records.clear()
        with Plugin(guest("gatecall1"), gates=gates, policy=policy, filter_mode=mode) as p:
            assert p.call_int("run", 3) == -63 * 3  # WASI EPERM, as the guest sees it
        assert len(records) == interpreted
    assert [(r.nr, r.args[0]) for r in records] == [(0x1001, 0), (0x1001, 1), (0x1001, 2)]


def test_an_unknown_filter_mode_is_refused():
    with pytest.raises(ValueError, match="compiled, interpreter"):
        Plugin(guest("hello"), filter_mode="fast")
