"""Every filter verdict, end to end: a real wasm module calls a gate, the policy decides.

The guest is ``guests/wasm/gatecall1.wasm`` (``once(a) = probe1(a)``) or inline
WAT. Each test checks both what the guest got back and whether the gate's
implementation ran, so a verdict that leaks through to the implementation fails.
"""

from __future__ import annotations

import json
import logging

import pytest
from rt_helpers import Recorder, gate_policy, guest, probe_gates, returns, wat

from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.bpf import opcodes as op
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
)
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import OFF_IP
from callgate.gates.app import AppGates
from callgate.gates.errors import GateDenied, GateViolation, PluginKilled, PluginPoisoned
from callgate.gates.spec import GuestExit
from callgate.runtime import ALLOW, AuditSink, Errno, Plugin, Value
from callgate.runtime.dispatch import GateResultError

EPERM = WASI_ERRNO["EPERM"]
ENOSYS = WASI_ERRNO["ENOSYS"]
EACCES = WASI_ERRNO["EACCES"]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def load(recorder: Recorder, policy, **kw) -> Plugin:
    return Plugin(guest("gatecall1"), gates=probe_gates(recorder), policy=policy, **kw)


# An arg-inspecting policy: the filter must evaluate args (no constant verdict for probe1).
ARG_POLICY = gate_policy(
    "kill_process",
    'names = ["probe1"]\naction = "allow"\nargs = [{index = 0, op = "lt", value = 100}]',
    'names = ["probe1"]\naction = "errno(EACCES)"\nargs = [{index = 0, op = "ge", value = 100}]',
    'names = ["probe1"]\naction = "log"\nargs = [{index = 0, op = "eq", value = 50}]',
    'names = ["probe1"]\naction = "kill_thread"\nargs = [{index = 0, op = "eq", value = 666}]',
    app_gates=("probe1",),
)


def test_allow_runs_the_gate_and_returns_its_result(recorder):
    with load(recorder, gate_policy("allow")) as p:
        assert p.call_int("once", 5) == 1005
        assert recorder.calls == [("probe1", (5,))]
        assert p.counters["probe1"]["allow"] == 1


def test_arg_inspecting_policy_decides_per_call(recorder, caplog):
    with load(recorder, ARG_POLICY) as p:
        assert p.call_int("once", 7) == 1007
        assert p.call_int("once", 100) == -EACCES
        caplog.set_level(logging.INFO, logger="callgate.audit")
        assert p.call_int("once", 50) == 1050  # LOG beats ALLOW in precedence, still runs
        with pytest.raises(GateViolation) as info:
            p.call_int("once", 666)  # KILL_THREAD beats ERRNO
        assert p.call_int("once", 8) == 1008  # KILL_THREAD does not poison
    assert recorder.calls == [("probe1", (7,)), ("probe1", (50,)), ("probe1", (8,))]
    assert (info.value.gate, info.value.number) == ("probe1", 0x1001)
    assert any("probe1" in r.getMessage() and "LOG" in r.getMessage() for r in caplog.records)


def test_errno_returns_minus_errno_for_app_gates_and_skips_the_gate(recorder):
    with load(recorder, gate_policy("errno(EPERM)")) as p:
        assert p.call_int("once", 5) == -EPERM
    with load(recorder, returns(SECCOMP_RET_ERRNO | 1234)) as p:
        assert p.call_int("once", 5) == -1234  # numbers pass through unchanged
    with load(recorder, returns(SECCOMP_RET_ERRNO | 0xFFFF)) as p:
        assert p.call_int("once", 5) == -4095  # capped at MAX_ERRNO, like the kernel
    assert recorder.calls == []


def test_errno_on_a_gate_without_results_aborts_with_gate_denied():
    ran = []
    gates = AppGates()

    @gates.gate(params=("i32",), uses_memory=False)
    def notify(call, value):
        ran.append(value)

    module = wat('(module (import "callgate" "notify" (func $n (param i32)))'
                 ' (func (export "go") (call $n (i32.const 3))))')
    with Plugin(module, gates=gates, policy=gate_policy("errno(EPERM)")) as p:
        with pytest.raises(GateDenied) as info:
            p.call_int("go")
        assert info.value.errno == EPERM
    with Plugin(module, gates=gates, policy=gate_policy("allow")) as p:
        p.call_int("go")
    assert ran == [3]


def test_trap_without_broker_is_denied(recorder):
    with load(recorder, gate_policy("trap")) as p:
        assert p.call_int("once", 5) == -EPERM
        assert p.counters["probe1"]["trap"] == 1
    assert recorder.calls == []


@pytest.mark.parametrize(("verdict", "expected", "ran"), [
    (ALLOW, 1005, True),
    (Errno(8), -8, False),
    (Value(42), 42, False),
])
def test_trap_asks_the_broker(recorder, verdict, expected, ran):
    requests = []

    def broker(request):
        requests.append(request)
        return verdict

    with load(recorder, returns(SECCOMP_RET_TRAP | 9), broker=broker) as p:
        assert p.call_int("once", 5) == expected
    (request,) = requests
    assert (request.gate.name, request.args, request.action, request.data, request.ip) == \
        ("probe1", (5,), "trap", 9, 0)
    assert request.memory is None  # gatecall1 exports no memory
    assert bool(recorder.calls) is ran


def test_broker_exception_reaches_the_caller_unchanged(recorder):
    boom = RuntimeError("broker says no")

    def broker(request):
        raise boom

    with load(recorder, gate_policy("trap"), broker=broker) as p:
        with pytest.raises(RuntimeError) as info:
            p.call_int("once", 1)
        assert info.value is boom
        assert p.call_int("run", 0) == 0  # still usable


def test_broker_returning_junk_is_a_clear_error(recorder):
    with load(recorder, gate_policy("trap"), broker=lambda r: "yes") as p, \
            pytest.raises(TypeError, match="ALLOW, Errno"):
        p.call_int("once", 1)


def test_kill_thread_aborts_only_that_call(recorder):
    with load(recorder, gate_policy("kill_thread")) as p:
        with pytest.raises(GateViolation) as info:
            p.call_int("once", 5)
        assert not isinstance(info.value, PluginKilled)
        assert not p.poisoned
        with pytest.raises(GateViolation):
            p.call_int("once", 6)
        assert p.counters["probe1"]["kill_thread"] == 2
    assert recorder.calls == []


def test_kill_process_poisons_the_plugin(recorder):
    with load(recorder, gate_policy("kill_process")) as p:
        with pytest.raises(PluginKilled) as info:
            p.call_int("once", 5)
        assert "probe1" in str(info.value) and str(0x1001) in str(info.value)
        assert p.poisoned
        for _ in range(3):
            with pytest.raises(PluginPoisoned) as later:
                p.call_int("run", 0)  # even an export that calls no gate
            assert later.value.cause is info.value
    assert recorder.calls == []


def test_unknown_action_value_kills_like_the_kernel(recorder):
    with load(recorder, returns(0x00010000)) as p, pytest.raises(PluginKilled):
        p.call_int("once", 5)
    assert recorder.calls == []


def test_log_allows_and_audits(recorder, tmp_path, caplog):
    path = tmp_path / "audit.jsonl"
    caplog.set_level(logging.INFO, logger="callgate.audit")
    with load(recorder, returns(SECCOMP_RET_LOG), audit=path, name="logme") as p:
        assert p.call_int("once", 5) == 1005
        assert p.call_int("once", 6) == 1006
        assert p.counters["probe1"]["log"] == 2
    assert recorder.calls == [("probe1", (5,)), ("probe1", (6,))]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["plugin"], r["gate"], r["number"], r["args"], r["action"]) for r in records] == \
        [("logme", "probe1", 0x1001, [5], "LOG"), ("logme", "probe1", 0x1001, [6], "LOG")]
    assert all(isinstance(r["time"], float) and r["time"] > 0 for r in records)
    assert sum("probe1" in r.getMessage() for r in caplog.records) == 2


def test_trace_without_tracer_answers_enosys(recorder):
    with load(recorder, returns(SECCOMP_RET_TRACE | 7)) as p:
        assert p.call_int("once", 5) == -ENOSYS
    assert recorder.calls == []


def test_trace_calls_the_tracer_then_runs_the_gate(recorder):
    seen = []
    with load(recorder, returns(SECCOMP_RET_TRACE | 7), tracer=seen.append) as p:
        assert p.call_int("once", 5) == 1005  # tracer returned None: allow
    assert [(r.action, r.data, r.args) for r in seen] == [("trace", 7, (5,))]
    assert recorder.calls == [("probe1", (5,))]
    with load(recorder, returns(SECCOMP_RET_TRACE | 7), tracer=lambda r: Errno(3)) as p:
        assert p.call_int("once", 5) == -3


def test_user_notif_without_broker_answers_enosys(recorder):
    with load(recorder, gate_policy("user_notif")) as p:
        assert p.call_int("once", 5) == -ENOSYS
    assert recorder.calls == []


def test_user_notif_asks_the_broker(recorder):
    seen = []

    def broker(request):
        seen.append(request.action)
        return Value(77)

    with load(recorder, returns(SECCOMP_RET_USER_NOTIF), broker=broker) as p:
        assert p.call_int("once", 5) == 77
    assert seen == ["user_notif"]
    assert recorder.calls == []


def test_denials_are_audited_with_args_and_action(recorder, tmp_path):
    sink = AuditSink(tmp_path / "a.jsonl")
    with sink, load(recorder, ARG_POLICY, audit=sink, name="p1") as p:
        p.call_int("once", 1)
        p.call_int("once", 123)
    (record,) = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert (record["plugin"], record["gate"], record["args"], record["action"]) == \
        ("p1", "probe1", [123], f"ERRNO({EACCES})")
    assert record["module"] == "callgate"


def test_filter_sees_i32_args_zero_extended_and_the_gate_gets_them_unsigned():
    got = []
    gates = AppGates()

    @gates.gate(params=("i32", "i64"), results=("i32",), uses_memory=False)
    def take(call, a, b):
        got.append((a, b))
        return -1

    module = wat('(module (import "callgate" "take" (func $t (param i32 i64) (result i32)))'
                 ' (func (export "go") (param i32 i64) (result i32)'
                 ' (call $t (local.get 0) (local.get 1))))')
    policy = gate_policy(
        "errno(EPERM)",
        'names = ["take"]\naction = "allow"\n'
        'args = [{index = 0, op = "eq", value = 0xffffffff}, '
        '{index = 1, op = "eq", value = 0xfffffffffffffffe}]',
        app_gates=("take",))
    with Plugin(module, gates=gates, policy=policy) as p:
        assert p.call_int("go", -1, -2) == -1
        assert p.call_int("go", 1, -2) == -EPERM
    assert got == [(0xFFFFFFFF, 0xFFFFFFFFFFFFFFFE)]


def test_instruction_pointer_is_the_import_index():
    gates = AppGates()
    for name in ("g0", "g1"):
        gates.add(name, lambda call: 5, results=("i32",), uses_memory=False)
    module = wat('(module (import "callgate" "g0" (func $a (result i32)))'
                 ' (import "callgate" "g1" (func $b (result i32)))'
                 ' (func (export "a") (result i32) (call $a))'
                 ' (func (export "b") (result i32) (call $b)))')
    # ERRNO(11) when ip == 1, else ALLOW.
    program = [Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, OFF_IP),
               Insn(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 1, 1),
               Insn(op.BPF_RET | op.BPF_K, 0, 0, SECCOMP_RET_ERRNO | 11),
               Insn(op.BPF_RET | op.BPF_K, 0, 0, SECCOMP_RET_ALLOW)]
    with Plugin(module, gates=gates, policy=program) as p:
        assert (p.call_int("a"), p.call_int("b")) == (5, -11)


def test_gate_exception_reaches_the_caller_as_itself_and_the_plugin_survives():
    boom = ValueError("gate bug")
    gates = AppGates()

    @gates.gate(params=("i64",), results=("i64",), uses_memory=False)
    def probe1(call, a):
        if a == 13:
            raise boom
        return a

    with Plugin(guest("gatecall1"), gates=gates) as p:
        with pytest.raises(ValueError) as info:
            p.call_int("once", 13)
        assert info.value is boom
        assert p.call_int("once", 12) == 12


def test_guest_exit_from_a_gate_ends_the_guest_with_its_code():
    gates = AppGates()

    @gates.gate(params=("i64",), results=("i64",), uses_memory=False)
    def probe1(call, a):
        raise GuestExit(int(a))

    with Plugin(guest("gatecall1"), gates=gates) as p:
        with pytest.raises(GuestExit) as info:
            p.call_int("run", 5)  # the first call (arg 0) exits; no later round runs
        assert info.value.code == 0


def test_wrong_result_shape_is_a_clear_error():
    gates = AppGates()

    @gates.gate(params=("i64",), results=("i64",), uses_memory=False)
    def probe1(call, a):
        return "many"

    with Plugin(guest("gatecall1"), gates=gates) as p, \
            pytest.raises(GateResultError, match="probe1"):
        p.call_int("once", 1)


def test_seven_args_reach_the_gate_and_six_reach_the_filter(recorder):
    # A rule on args[5] decides; args[6] is invisible to the filter but reaches the gate.
    policy = gate_policy(
        "errno(EPERM)",
        'names = ["probe"]\naction = "allow"\nargs = [{index = 5, op = "eq", value = 6}]',
        app_gates=("probe",))
    with Plugin(guest("gatecall"), gates=probe_gates(recorder), policy=policy) as p:
        assert p.call_int("once", 1, 2, 3, 4, 5, 6, 7) == 7
        assert p.call_int("once", 1, 2, 3, 4, 5, 9, 7) == -EPERM
    assert recorder.calls == [("probe", (1, 2, 3, 4, 5, 6, 7))]


def test_a_gate_can_call_back_into_its_plugin():
    gates = AppGates()
    holder = {}

    @gates.gate(params=("i64",), results=("i64",), uses_memory=False)
    def probe1(call, a):
        if a == 0:
            return 100
        return holder["p"].call_int("once", a - 1) + 1

    with Plugin(guest("gatecall1"), gates=gates) as p:
        holder["p"] = p
        assert p.call_int("once", 3) == 103


def test_kills_are_audited_in_the_json_file(recorder, tmp_path):
    path = tmp_path / "kills.jsonl"
    with load(recorder, gate_policy("kill_process"), audit=path, name="k") as p, \
            pytest.raises(PluginKilled):
        p.call_int("once", 9)
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (record["plugin"], record["gate"], record["number"], record["args"],
            record["action"], record["outcome"]) == \
        ("k", "probe1", 0x1001, [9], "KILL_PROCESS", "plugin killed")
