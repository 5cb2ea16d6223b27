"""The native gate core inside a real Plugin: which imports it serves, counters merged,
denied calls' records delivered (in order with Python's, through the rate limit, across
a full buffer), kills and traps raised as Python raises them, and the pure-Python path
when asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import wasmtime
from native_helpers import require_native

from callgate import Limits, Plugin
from callgate.gates.errors import (
    GateViolation,
    OutputLimitExceeded,
    PluginKilled,
    PluginPoisoned,
)
from callgate.gates.wasi.provider import Preopen, WasiConfig, WasiProvider
from callgate.runtime import audit
from callgate.runtime.audit import AuditSink

# One WASI call in a loop, the denied one with an fd the policy refuses.
GUEST = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $prestat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\\00\\02\\00\\00\\10\\00\\00\\00")
  (data (i32.const 512) "0123456789abcdef")
  (func (export "clock") (param $n i32) (param $id i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (local.get $sum)
        (call $clock (local.get $id) (i64.const 0) (i32.const 64))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))
  (func (export "write") (param $n i32) (param $fd i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (local.get $sum)
        (call $fd_write (local.get $fd) (i32.const 256) (i32.const 1) (i32.const 64))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))
  (func (export "prestat") (param $fd i32) (result i32)
    (call $prestat (local.get $fd) (i32.const 64))))
""")
POLICY = """
[gates]
default = "allow"
[[gates.rules]]
names = ["fd_write"]
action = "errno(EBADF)"
args = [{ index = 0, op = "ge", value = 1000 }]
[[gates.rules]]
names = ["fd_write"]
action = "log"
args = [{ index = 0, op = "eq", value = 999 }]
[[gates.rules]]
names = ["clock_time_get"]
action = "kill_process"
args = [{ index = 0, op = "eq", value = 77 }]
[[gates.rules]]
names = ["clock_time_get"]
action = "kill_thread"
args = [{ index = 0, op = "eq", value = 78 }]
"""


class Capture(AuditSink):
    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.out: list[audit.AuditRecord] = []

    def _write(self, record: audit.AuditRecord, kind: int) -> None:
        self.out.append(record)


def plugin(sink: AuditSink | None = None, **kw: object) -> Plugin:
    config = WasiConfig(stdout=bytearray(), preopens=[Preopen(os.getcwd(), "/here")])
    return Plugin(GUEST, policy=POLICY, providers=[WasiProvider(config)], audit=sink,
                  **kw)  # type: ignore[arg-type]


def test_the_hot_gates_are_bound_natively_and_counted_once():
    require_native()
    with plugin() as p:
        bound = {b.spec.name: bool(b.native) for b in p._bindings}
        assert bound == {"clock_time_get": True, "fd_write": True, "fd_prestat_get": True}
        assert p.call_int("clock", 1000, 1) == 0
        assert p.call_int("write", 10, 1) == 0  # captured stdout: C hands it to Python
        assert p.call_int("prestat", 3) == 0
        counts = p.counters
        assert counts["clock_time_get"]["allow"] == 1000
        assert counts["fd_write"]["allow"] == 10
        assert counts["fd_prestat_get"]["allow"] == 1
    assert p.counters["clock_time_get"]["allow"] == 1000  # still readable once closed


def test_denied_records_come_in_call_order_with_pythons_and_none_is_lost():
    """C buffers its denials; a LOG verdict (Python's) flushes them first; a buffer that
    fills mid-call is flushed and refilled; every record arrives, in order."""
    require_native()
    sink = Capture(rate=None)
    with plugin(sink) as p:
        assert p.call_int("write", 3, 1000) == 3 * 8  # EBADF
        assert p.call_int("write", 1, 999) == 8       # LOG: Python runs it (no fd 999)
        assert p.call_int("write", 2, 1001) == 2 * 8
        assert [r.args[0] for r in sink.out] == [1000, 1000, 1000, 999, 1001, 1001]
        assert [r.action for r in sink.out] == ["ERRNO(8)"] * 3 + ["LOG"] + ["ERRNO(8)"] * 2
        assert sink.out[3].outcome == "allowed" and sink.out[0].outcome == "denied errno 8"
        sink.out.clear()
        n = 20_000  # several buffers' worth in one call
        assert p.call_int("write", n, 1002) == n * 8
        assert len(sink.out) == n and all(r.args[0] == 1002 for r in sink.out)
        times = [r.time for r in sink.out]
        assert times == sorted(times)
        assert p.counters["fd_write"]["errno"] == 3 + 2 + n
        assert p.counters["fd_write"]["log"] == 1


def test_a_flood_of_denials_goes_through_the_rate_limit(tmp_path):
    require_native()
    path = tmp_path / "audit.jsonl"
    sink = AuditSink(path, rate=100.0, burst=50)
    with plugin(sink) as p:
        n = 100_000
        assert p.call_int("write", n, 5000) == n * 8
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    written = [x for x in lines if not x.get("suppressed")]
    suppressed = sum(x.get("suppressed", 0) for x in lines)
    assert 50 <= len(written) < 1000
    assert len(written) + suppressed == n


def test_a_kill_in_c_poisons_the_plugin_as_python_does():
    require_native()
    sink = Capture(rate=None)
    with plugin(sink) as p:
        with pytest.raises(GateViolation) as thread:
            p.call_int("clock", 1, 78)
        assert not isinstance(thread.value, PluginKilled)
        assert p.call_int("clock", 1, 1) == 0  # KILL_THREAD ends the call, not the plugin
        with pytest.raises(PluginKilled) as killed:
            p.call_int("clock", 5, 77)
        assert killed.value.gate == "clock_time_get" and p.poisoned
        with pytest.raises(PluginPoisoned):
            p.call_int("clock", 1, 1)
        assert [r.outcome for r in sink.out] == ["call aborted", "plugin killed"]
        assert p.counters["clock_time_get"]["kill_process"] == 1


def test_an_output_limit_passed_in_c_raises_the_python_error(tmp_path):
    require_native()
    config = WasiConfig(preopens=[Preopen(tmp_path, "/t")])
    with Plugin(GUEST, providers=[WasiProvider(config)], limits=Limits(output=40)) as p:
        # fd 1 is the host's stdout, a plain host fd: 16 bytes a call, the third passes 40
        saved = os.dup(1)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        try:
            with pytest.raises(OutputLimitExceeded, match=r"passed the limit of 40 bytes"):
                p.call_int("write", 3, 1)
            assert p.output_used == 48
            assert p.call_int("write", 2, 1) == 0  # a new call: a new budget
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)


def test_the_pure_python_path_when_asked_for():
    code = ("from callgate.native import gate\n"
            "import test_native_runtime as t\n"
            "p = t.plugin()\n"
            "print(gate.available(), p._native is None, p.call_int('clock', 10, 1),"
            " p.counters['clock_time_get']['allow'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(__file__),
                          env={**os.environ, "CALLGATE_PURE_PYTHON": "1",
                               "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "0", "10"]


def test_the_interpreter_mode_stays_python():
    require_native()
    with plugin(filter_mode="interpreter") as p:
        assert p._native is None
        assert p.call_int("write", 2, 1000) == 16


def test_json_lines_of_native_records_are_the_schema_pythons_are(tmp_path):
    require_native()
    path = tmp_path / "a.jsonl"
    sink = AuditSink(path, rate=None)
    with plugin(sink) as p:
        p.call_int("write", 1, 4000)
        p.call_int("write", 1, 999)
    sink.close()
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert set(first) == set(second)
    assert first["gate"] == "fd_write" and first["args"] == [4000, 256, 1, 64]


def test_callgate_doctor_says_which_path_is_active():
    def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callgate", "doctor", *args],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, **env})

    pure = doctor("--require-native", CALLGATE_PURE_PYTHON="1")
    assert pure.returncode == 1
    assert pure.stdout.startswith("gate path: pure Python (CALLGATE_PURE_PYTHON is set)")
    require_native()
    native = doctor("--require-native", CALLGATE_PURE_PYTHON="")
    assert native.returncode == 0, native.stderr
    assert native.stdout.startswith("gate path: native core (")
    assert "fd_write" in native.stdout
