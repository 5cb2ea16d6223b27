"""Denied calls' audit records, buffered by the native core and delivered in bulk
(``AuditSink.emit_many``), reach a sink exactly as one ``emit`` per record at the record's
moment would: the same records written, the same held back, the same summaries, in order.

Three implementations are held equal on random record streams: the per-record ``emit``
(the definition), ``emit_many`` over the C scanner (``cg_audit_scan_run``) and
``emit_many`` over its Python twin (``callgate.native.gate.scan``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from native_helpers import require_native

from callgate.bpf import actions as A
from callgate.native import gate as native_gate
from callgate.runtime import audit, dispatch
from callgate.runtime.dispatch import NativeAuditBatch, outcome_of

RETS = (A.SECCOMP_RET_ERRNO | 1, A.SECCOMP_RET_ERRNO | 63, A.SECCOMP_RET_ERRNO | 4096,
        A.SECCOMP_RET_KILL_THREAD, A.SECCOMP_RET_KILL_PROCESS, 0x12340000)
NBINDINGS = 40  # more (binding, ret) groups than one scan holds (32)


@dataclasses.dataclass(frozen=True)
class FakeSpec:
    name: str
    number: int
    module: str = "m"


@dataclasses.dataclass(frozen=True)
class FakeBinding:
    spec: FakeSpec


BINDINGS = [FakeBinding(FakeSpec(f"gate{i}", 100 + i)) for i in range(NBINDINGS)]


class FakePlugin:
    name = "p"
    _bindings = BINDINGS


Entry = tuple[int, int, int, tuple[int, ...]]  # (t_ns, binding, ret, args)


class ListBatch:
    """An AuditBatch over a Python list, scanned by the Python twin."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    def scan(self, state: native_gate.ScanState) -> None:
        native_gate.scan([(t / 1e9, b, r) for t, b, r, _ in self.entries], state)

    def record(self, pos: int) -> tuple[audit.AuditRecord, int]:
        t, b, r, args = self.entries[pos]
        return _record(t, b, r, args)

    def group(self, binding: int, ret: int) -> tuple[tuple[str, int, str, str], int]:
        spec = BINDINGS[binding].spec
        return (spec.name, spec.number, spec.module, A.format_action(ret)), \
            ret & A.SECCOMP_RET_ACTION_FULL

    def records(self) -> Iterator[tuple[audit.AuditRecord, int]]:
        for pos in range(len(self.entries)):
            yield self.record(pos)


def _record(t: int, b: int, r: int, args: tuple[int, ...]) -> tuple[audit.AuditRecord, int]:
    spec = BINDINGS[b].spec
    return audit.AuditRecord(t / 1e9, "p", spec.name, spec.number, spec.module, args,
                             A.format_action(r), outcome_of(r)), r & A.SECCOMP_RET_ACTION_FULL


class Capture(audit.AuditSink):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.out: list[tuple[Any, ...]] = []

    def _write(self, record: audit.AuditRecord, kind: int) -> None:
        self.out.append((record.gate, record.args, record.action, record.outcome,
                         record.suppressed, kind))


def _native(entries: list[Entry]) -> native_gate.NativePlugin:
    data, size, trap_new = native_gate.test_memory_api()
    api = native_gate.HostApi(trap_new, data, size, 0,
                              _addr(dispatch._FALLBACK), _addr(dispatch._FLUSH))
    native = native_gate.NativePlugin(api, next(dispatch._ids), NBINDINGS, 0)
    for t, b, r, args in entries:
        assert native.audit_push(t, b, r, args)
    return native


def _addr(cfunc: Any) -> int:
    import ctypes
    return ctypes.cast(cfunc, ctypes.c_void_p).value or 0


entries_strategy = st.lists(
    st.tuples(st.integers(0, 400_000_000), st.integers(0, NBINDINGS - 1), st.sampled_from(RETS),
              st.lists(st.integers(0, 2**64 - 1), max_size=4).map(tuple)),
    max_size=300,
).map(lambda raw: [(t, b, r, a) for (t, b, r, a) in
                   zip(itertools.accumulate(d for d, *_ in raw),
                       (x[1] for x in raw), (x[2] for x in raw), (x[3] for x in raw),
                       strict=True)])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # it only patches
@given(entries=entries_strategy, rate=st.sampled_from((0.5, 3.0, 100.0)),
       burst=st.sampled_from((1, 2, 5, 500)), start_ns=st.integers(0, 10**12),
       earlier=st.booleans())
@example(entries=[(i * 10_000_000, i % 35, RETS[i % 6], (i,)) for i in range(400)], rate=3.0,
         burst=2, start_ns=0, earlier=True)  # held, summarised, over 32 groups, kills
def test_emit_many_writes_what_emit_writes(monkeypatch: pytest.MonkeyPatch, entries, rate,
                                           burst, start_ns, earlier):
    require_native()
    entries = [(t + start_ns, b, r, a) for t, b, r, a in entries]
    monkeypatch.setattr(audit, "now", lambda: 0.0)
    sinks = [Capture(rate=rate, burst=burst) for _ in range(3)]
    clock = iter(())

    monkeypatch.setattr(audit.time, "monotonic", lambda: next(clock))
    if earlier:  # the sink already holds another plugin's records and this one's bucket
        for sink in sinks:
            clock = iter([start_ns / 1e9 - 0.5, start_ns / 1e9 - 0.4])
            sink.emit(_other(), A.SECCOMP_RET_ERRNO)
            sink.emit(*_record(0, 2, A.SECCOMP_RET_ERRNO | 1, ()))
    clock = iter(t / 1e9 for t, *_ in entries)
    for t, b, r, args in entries:  # the definition: one emit per record, at its moment
        sinks[0].emit(*_record(t, b, r, args))
    clock = itertools.repeat(0.0)  # emit_many reads the records' own moments
    sinks[1].emit_many("p", ListBatch(entries))
    native = _native(entries)
    sinks[2].emit_many("p", NativeAuditBatch(native, FakePlugin()))  # type: ignore[arg-type]
    for sink in sinks:
        sink.flush()
    if len(entries) == 400:  # the example above: the rate limit did engage
        assert any(suppressed for *_, suppressed, _kind in sinks[0].out)
    assert sinks[1].out == sinks[0].out
    assert sinks[2].out == sinks[0].out


def _other() -> audit.AuditRecord:
    return audit.AuditRecord(0.0, "q", "g", 1, "m", (), "ERRNO(1)", "denied errno 1")


@settings(max_examples=300, deadline=None)
@given(entries=entries_strategy, rate=st.floats(0.1, 1000), burst=st.integers(1, 50),
       tokens=st.floats(0, 50), has_bucket=st.booleans(), has_held=st.booleans(),
       next_summary=st.sampled_from((float("inf"), 0.2, 0.35)))
def test_the_c_scanner_and_its_python_twin_stop_alike(entries, rate, burst, tokens, has_bucket,
                                                     has_held, next_summary):
    """Scan after scan over one buffer, from the same state: the same stops and states."""
    require_native()
    native = _native(entries)
    twin = [(t / 1e9, b, r) for t, b, r, _ in entries]
    positions = {}  # C's word offsets -> list indices
    pos = 0
    for i in range(len(entries)):
        positions[pos] = i
        found = native.audit_read(pos)
        assert found is not None
        pos = found[0]
    positions[pos] = len(entries)
    state_c = native_gate.ScanState(0, rate, float(burst), 0.25, has_bucket, tokens, 0.01,
                                    has_held, next_summary)
    state_py = dataclasses.replace(state_c)
    for _ in range(len(entries) + 50):
        native.audit_scan(state_c)
        native_gate.scan(twin, state_py)
        c_view = dataclasses.replace(state_c, pos=positions[state_c.pos],
                                     next=positions[state_c.next])
        assert c_view == state_py
        if state_py.stop == native_gate.SCAN_END:
            break
        resume = state_py.next if state_py.stop == native_gate.SCAN_ADMITTED else state_py.pos
        if state_py.stop == native_gate.SCAN_SUMMARY:  # as emit_many: summaries taken
            state_c.next_summary = state_py.next_summary = float("inf")
            state_c.has_held = state_py.has_held = False
        state_py.pos = resume
        state_c.pos = next(k for k, v in positions.items() if v == resume)


def test_a_full_buffer_is_refused_and_read_back_whole():
    require_native()
    native = _native([])
    pushed = 0
    while native.audit_push(pushed, pushed % NBINDINGS, A.SECCOMP_RET_ERRNO | 1, (pushed,) * 3):
        pushed += 1
    assert pushed > 4000 and native.audit_pending() == pushed
    pos, seen = 0, 0
    while (found := native.audit_read(pos)) is not None:
        pos, t_ns, binding, ret, args = found
        assert (t_ns, binding, ret, args) == (seen, seen % NBINDINGS, A.SECCOMP_RET_ERRNO | 1,
                                              (seen,) * 3)
        seen += 1
    assert seen == pushed
    native.audit_clear()
    assert native.audit_pending() == 0 and native.audit_read(0) is None
