"""The audit log is bounded: a flood of denied calls writes a bounded number of records,
plus summary records whose counts make the total exact (docs/runtime.md, "Audit").
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import pytest
from rt_helpers import Recorder, gate_policy, guest, probe_gates

from callgate.bpf.actions import SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS
from callgate.gates.errors import DeadlineExceeded, PluginKilled
from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.runtime import AuditRecord, AuditSink, Limits, Plugin
from callgate.runtime.audit import DEFAULT_BURST, DEFAULT_RATE, SUMMARY_INTERVAL


@pytest.fixture(autouse=True)
def quiet_audit_logger():
    """pytest keeps every captured log record; the flood is about the file."""
    audit_logger = logging.getLogger("callgate.audit")
    level = audit_logger.level
    audit_logger.setLevel(logging.CRITICAL + 1)
    yield
    audit_logger.setLevel(level)


def read(path) -> tuple[list[dict], list[dict]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return ([r for r in records if "suppressed" not in r],
            [r for r in records if "suppressed" in r])


def test_a_flood_of_denied_calls_is_bounded_and_the_summaries_add_up(tmp_path):
    path = tmp_path / "audit.jsonl"
    started = time.monotonic()
    with Plugin(guest("hostile_denied_loop"), gates=probe_gates(Recorder()),
                providers=[WasiProvider(WasiConfig(stdout=bytearray()))],
                policy=gate_policy("errno(EPERM)", app_gates=("probe1",)),
                limits=Limits(timeout=2.5), audit=path, name="flood") as p:
        with pytest.raises(DeadlineExceeded):
            p.call_int("run")  # denied calls until the deadline
        counters = p.counters
    elapsed = time.monotonic() - started
    denied = {gate: counts["errno"] for gate, counts in counters.items()}
    assert sum(denied.values()) > 20 * (DEFAULT_BURST + DEFAULT_RATE * elapsed)  # a flood

    written, summaries = read(path)
    # Bounded: the burst, then the rate, for the whole run (both gates share the bucket).
    assert len(written) <= DEFAULT_BURST + DEFAULT_RATE * elapsed + 1
    # A summary per (gate, action) per interval at most, and the last ones at close.
    assert 2 <= len(summaries) <= 2 * (elapsed / SUMMARY_INTERVAL + 2)
    assert {(s["gate"], s["action"], len(s["args"])) for s in summaries} == \
        {("fd_write", "ERRNO(63)", 0), ("probe1", "ERRNO(63)", 0)}
    # Exact: what was written plus what the summaries count is every denied call.
    total = Counter(r["gate"] for r in written)
    for s in summaries:
        total[s["gate"]] += s["suppressed"]
    assert total == denied
    assert all(s["plugin"] == "flood" and "suppressed" in s["outcome"] for s in summaries)


def record(plugin: str, gate: str = "fd_write", action: str = "ERRNO(63)") -> AuditRecord:
    return AuditRecord(time.time(), plugin, gate, 8, "wasi_snapshot_preview1", (1,), action,
                       "denied errno 63")


def test_each_plugin_has_its_own_bucket_and_kills_always_get_through(tmp_path):
    path = tmp_path / "shared.jsonl"
    with AuditSink(path, rate=1, burst=3) as sink:
        for plugin in ("a", "b"):
            for _ in range(10):
                sink.emit(record(plugin), SECCOMP_RET_ERRNO)
        sink.emit(record("a", action="KILL_PROCESS"), SECCOMP_RET_KILL_PROCESS)
    written, summaries = read(path)
    assert Counter(r["plugin"] for r in written) == {"a": 4, "b": 3}  # 3 each, and a's kill
    assert written[-1]["action"] == "KILL_PROCESS"
    assert sorted((s["plugin"], s["suppressed"]) for s in summaries) == [("a", 7), ("b", 7)]


def test_summaries_are_written_once_the_interval_passes(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("callgate.runtime.audit.time.monotonic", lambda: clock[0])
    path = tmp_path / "a.jsonl"
    with AuditSink(path, rate=1, burst=1) as sink:
        sink.emit(record("p"), SECCOMP_RET_ERRNO)   # written
        sink.emit(record("p"), SECCOMP_RET_ERRNO)   # held
        sink.emit(record("p"), SECCOMP_RET_ERRNO)   # held
        assert len(path.read_text().splitlines()) == 1
        clock[0] += SUMMARY_INTERVAL + 0.5          # a token is back, and the window passed
        sink.emit(record("p", gate="probe1"), SECCOMP_RET_ERRNO)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(r["gate"], r.get("suppressed", 0)) for r in lines] == \
            [("fd_write", 0), ("fd_write", 2), ("probe1", 0)]


def test_no_rate_writes_everything(tmp_path):
    path = tmp_path / "all.jsonl"
    with AuditSink(path, rate=None) as sink:
        for _ in range(DEFAULT_BURST * 3):
            sink.emit(record("p"), SECCOMP_RET_ERRNO)
    written, summaries = read(path)
    assert (len(written), summaries) == (DEFAULT_BURST * 3, [])


@pytest.mark.parametrize("bad", [{"rate": 0}, {"rate": float("inf")}, {"rate": "10"},
                                 {"burst": 0}, {"burst": 1.5}])
def test_bad_rate_limits_are_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="AuditSink"):
        AuditSink(tmp_path / "x.jsonl", **bad)


def test_a_kill_after_a_flood_is_still_written(tmp_path):
    path = tmp_path / "kill.jsonl"
    policy = gate_policy("errno(EPERM)", 'names = ["probe1"]\naction = "kill_process"\n'
                         'args = [{index = 0, op = "eq", value = 5000}]', app_gates=("probe1",))
    with Plugin(guest("gatecall1"), gates=probe_gates(Recorder()), policy=policy,
                audit=path, name="k") as p:
        for i in range(DEFAULT_BURST + 50):
            p.call_int("once", i)
        with pytest.raises(PluginKilled):
            p.call_int("once", 5000)
    written, summaries = read(path)
    assert written[-1]["action"] == "KILL_PROCESS"
    assert len(written) - 1 + sum(s["suppressed"] for s in summaries) == DEFAULT_BURST + 50
