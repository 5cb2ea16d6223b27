"""Audit records of gate calls the policy did not simply allow, and per-gate counters.

Every ERRNO, TRAP, USER_NOTIF, TRACE, KILL and LOG verdict produces one
:class:`AuditRecord`. Records go to the ``callgate.audit`` logger (LOG verdicts at
INFO, denials at WARNING, kills at ERROR) and, when the plugin was given an audit
file, as one JSON object per line, flushed per record so a crash loses nothing.
Allowed calls are only counted, never logged: they are the hot path.

A guest can make millions of denied calls a minute, so a sink is rate-limited like
the kernel's own audit log: a token bucket per plugin lets ``burst`` records through
at once and ``rate`` a second after that. Records past it are not written but
counted per (gate, action); one *summary* record per (gate, action) gives the count
(``suppressed``) once :data:`SUMMARY_INTERVAL` has passed since the first of them
(written with the next record to reach the sink), and at ``flush()`` / ``close()``
(and at exit, for a sink nobody closed). ``Plugin.counters`` always count every call.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Protocol

from callgate.bpf.actions import (
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
)
from callgate.native.gate import SCAN_ADMITTED, SCAN_END, SCAN_SUMMARY, ScanState

logger = logging.getLogger("callgate.audit")
# A library must not print on its own: records reach stderr only once the application
# configures logging (logging.basicConfig(), a handler on "callgate.audit" …).
logger.addHandler(logging.NullHandler())

# Counter slots per gate, in this order (``Plugin.counters`` names them).
COUNTER_NAMES = ("allow", "log", "errno", "trap", "user_notif", "trace", "kill_thread",
                 "kill_process")
ALLOW, LOG, ERRNO, TRAP, USER_NOTIF, TRACE, KILL_THREAD, KILL_PROCESS = range(len(COUNTER_NAMES))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One mediated call: who, which gate, with what, what the policy said, when.

    ``args`` are every wasm argument as an unsigned int; ``action`` is the verdict
    as seccomp-tools prints it (``ERRNO(63)``, ``KILL_PROCESS`` …); ``outcome``
    says what the runtime did (``denied``, ``allowed``, ``broker:errno(8)`` …).
    """

    time: float
    plugin: str
    gate: str
    number: int
    module: str
    args: tuple[int, ...]
    action: str
    outcome: str
    #: In a summary record: how many records of this plugin, gate and action the rate
    #: limit kept back (``args`` is then empty). 0 in every other record.
    suppressed: int = 0

    def to_json(self) -> str:
        fields = asdict(self)
        if not self.suppressed:
            del fields["suppressed"]
        return json.dumps(fields, separators=(",", ":"))


#: Records a sink writes per plugin, by default: ``burst`` at once, then ``rate`` a second.
DEFAULT_RATE = 100.0
DEFAULT_BURST = 500
#: Seconds between summaries of what the rate limit kept back (per plugin).
SUMMARY_INTERVAL = 1.0

# (gate, number, module, action) of a suppressed record.
_Key = tuple[str, int, str, str]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float


@dataclass(slots=True)
class _Held:
    """What the rate limit kept back of one plugin since ``since`` (monotonic)."""

    since: float
    counts: dict[_Key, list[int]] = field(default_factory=dict)  # key -> [count, kind]


class AuditSink:
    """Where a plugin's records go: the logger, and optionally JSON lines.

    ``path`` is opened for appending (and closed with the sink); ``stream`` is a text
    stream that stays the caller's (``sys.stderr``, for a human watching a run).
    Several plugins may share one sink: writes are serialised by a lock.

    ``rate`` (records a second, per plugin; None: no limit) and ``burst`` bound what
    the sink writes; see the module docstring. Close the sink (or ``flush()`` it) to
    have the last summaries written.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 stream: IO[str] | None = None, rate: float | None = DEFAULT_RATE,
                 burst: int = DEFAULT_BURST) -> None:
        if path and stream is not None:
            raise ValueError("give an AuditSink a path or a stream, not both")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or not 0 < rate < math.inf):
            raise ValueError(f"AuditSink rate must be a positive number of records a second "
                             f"or None (no limit), got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"AuditSink burst must be an int of at least 1, got {burst!r}")
        self.rate = rate
        self.burst = burst
        self._lock = threading.Lock()  # the rate limit's state
        self._write_lock = threading.Lock()  # one record at a time into the file
        self._buckets: dict[str, _Bucket] = {}
        self._held: dict[str, _Held] = {}
        self._next_summary = math.inf  # monotonic time the oldest held records are due
        self._owned = bool(path)
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else stream  # noqa: SIM115
        if rate is not None:
            _LIVE.add(self)

    def emit(self, record: AuditRecord, kind: int) -> None:
        """Write ``record`` (``kind``: its SECCOMP_RET_* action), unless the plugin is
        over its rate; then it is counted for a summary."""
        if self.rate is None:
            self._write(record, kind)
            return
        moment = time.monotonic()
        with self._lock:
            due = self._take_summaries(moment) if moment >= self._next_summary else []
            # A plugin is killed once, so its KILL_PROCESS record cannot flood: always written.
            admitted = kind == SECCOMP_RET_KILL_PROCESS or self._admit(record.plugin, moment)
            if not admitted:
                self._hold(record, kind, moment)
        for summary, summary_kind in due:
            self._write(summary, summary_kind)
        if admitted:
            self._write(record, kind)

    def emit_many(self, plugin: str, batch: AuditBatch) -> None:
        """Write ``batch``, records of one ``plugin`` buffered elsewhere (the native gate
        core), exactly as one :meth:`emit` per record at the record's own moment would:
        the same records admitted, the same held back and summarised, in the same order.

        The rate limit's bookkeeping runs in bulk (:meth:`AuditBatch.scan`: a run of held
        records costs one count per (gate, action), not one ``emit`` each); the sink's lock
        is taken per run, as ``emit`` takes it per record.
        """
        if self.rate is None or type(self).emit is not AuditSink.emit:
            # No rate limit, or a sink of its own that takes every record through emit().
            for record, kind in batch.records():
                self.emit(record, kind)
            return
        pos = 0
        while True:
            with self._lock:
                bucket = self._buckets.get(plugin)
                state = ScanState(pos, float(self.rate), float(self.burst), SUMMARY_INTERVAL,
                                  bucket is not None, bucket.tokens if bucket else 0.0,
                                  bucket.last if bucket else 0.0, plugin in self._held,
                                  self._next_summary)
                batch.scan(state)
                if state.has_bucket:
                    if bucket is None:
                        self._buckets[plugin] = _Bucket(state.tokens, state.last)
                    else:
                        bucket.tokens, bucket.last = state.tokens, state.last
                if state.groups:
                    held = self._held.get(plugin)
                    if held is None:
                        held = self._held[plugin] = _Held(state.held_since)
                    for binding, ret, count in state.groups:
                        key, kind = batch.group(binding, ret)
                        held.counts.setdefault(key, [0, kind])[0] += count
                self._next_summary = state.next_summary
                due = self._take_summaries(state.moment) if state.stop == SCAN_SUMMARY else []
            for summary, summary_kind in due:
                self._write(summary, summary_kind)
            if state.stop == SCAN_ADMITTED:
                self._write(*batch.record(state.pos))
                pos = state.next
            elif state.stop == SCAN_END:
                return
            else:
                pos = state.pos

    def flush(self) -> None:
        """Write the summaries of every record held back so far."""
        with self._lock:
            due = self._take_summaries(math.inf)
        for summary, kind in due:
            self._write(summary, kind)

    # -- the rate limit (called with the lock held) ------------------------------------------

    def _admit(self, plugin: str, moment: float) -> bool:
        """Take a token from ``plugin``'s bucket, if it has one."""
        bucket = self._buckets.get(plugin)
        if bucket is None:
            bucket = self._buckets[plugin] = _Bucket(float(self.burst), moment)
        else:
            assert self.rate is not None
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (moment - bucket.last) * self.rate)
            bucket.last = moment
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def _hold(self, record: AuditRecord, kind: int, moment: float) -> None:
        held = self._held.get(record.plugin)
        if held is None:
            held = self._held[record.plugin] = _Held(moment)
            self._next_summary = min(self._next_summary, moment + SUMMARY_INTERVAL)
        slot = held.counts.setdefault((record.gate, record.number, record.module,
                                       record.action), [0, kind])
        slot[0] += 1

    def _take_summaries(self, moment: float) -> list[tuple[AuditRecord, int]]:
        """Summaries of the plugins whose held records are due at ``moment``."""
        out: list[tuple[AuditRecord, int]] = []
        stamp = now()
        for plugin, held in list(self._held.items()):
            if held.since + SUMMARY_INTERVAL > moment:
                continue
            del self._held[plugin]
            for (gate, number, module, action), (count, kind) in held.counts.items():
                outcome = (f"{count} more record(s) like this suppressed (audit rate limit: "
                           f"{self.rate:g}/s, burst {self.burst})")
                out.append((AuditRecord(stamp, plugin, gate, number, module, (), action,
                                        outcome, count), kind))
        self._next_summary = min((h.since + SUMMARY_INTERVAL for h in self._held.values()),
                                 default=math.inf)
        return out

    # -- writing ---------------------------------------------------------------------------

    def _write(self, record: AuditRecord, kind: int) -> None:
        level = logging.INFO if kind == SECCOMP_RET_LOG else logging.WARNING
        if kind in (SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD):
            level = logging.ERROR
        if logger.isEnabledFor(level):
            if record.suppressed:
                logger.log(level, "plugin %s gate %s (#%d) action=%s: %s", record.plugin,
                           record.gate, record.number, record.action, record.outcome)
            else:
                logger.log(level, "plugin %s gate %s (#%d) args=%s action=%s outcome=%s",
                           record.plugin, record.gate, record.number, list(record.args),
                           record.action, record.outcome)
        if self._file is not None:
            line = record.to_json() + "\n"
            with self._write_lock:
                if self._file is not None:
                    self._file.write(line)
                    self._file.flush()

    def close(self) -> None:
        """Write the pending summaries, then close the file (if the sink opened it)."""
        self.flush()
        with self._write_lock:
            if self._file is not None and self._owned:
                self._file.close()
            self._file = None
        _LIVE.discard(self)

    def __enter__(self) -> AuditSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AuditBatch(Protocol):
    """Records of one plugin buffered outside a sink, in call order, for
    :meth:`AuditSink.emit_many`. Positions are the batch's own (0 is the first record);
    records are grouped by ``(binding, ret)``, each group one (gate, action) key."""

    def scan(self, state: ScanState) -> None:
        """The rate limit over the records from ``state.pos`` (``cg_audit_scan_run`` or
        its twin :func:`callgate.native.gate.scan`)."""

    def record(self, pos: int) -> tuple[AuditRecord, int]:
        """The record at ``pos`` and its kind (its SECCOMP_RET_* action)."""
        ...

    def group(self, binding: int, ret: int) -> tuple[_Key, int]:
        """The summary key of a group and its kind."""
        ...

    def records(self) -> Iterator[tuple[AuditRecord, int]]:
        """Every record, in order (a sink without a rate limit writes them all)."""
        ...


# Sinks that may hold records back: their summaries are written at exit if nobody
# closed them (the default sink, a stream sink the application keeps).
_LIVE: weakref.WeakSet[AuditSink] = weakref.WeakSet()


@atexit.register
def _flush_live_sinks() -> None:
    for sink in list(_LIVE):
        with contextlib.suppress(Exception):  # at exit, a closed stream must not stop the rest
            sink.flush()


def now() -> float:
    return time.time()
