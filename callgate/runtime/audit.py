"""Audit records of gate calls the policy did not simply allow, and per-gate counters.

Every ERRNO, TRAP, USER_NOTIF, TRACE, KILL and LOG verdict produces one
:class:`AuditRecord`. Records go to the ``callgate.audit`` logger (LOG verdicts at
INFO, denials at WARNING, kills at ERROR) and, when the plugin was given an audit
file, as one JSON object per line, flushed per record so a crash loses nothing.
Allowed calls are only counted, never logged: they are the hot path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import IO

from callgate.bpf.actions import (
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
)

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

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


class AuditSink:
    """Where a plugin's records go: the logger, and optionally JSON lines.

    ``path`` is opened for appending (and closed with the sink); ``stream`` is a text
    stream that stays the caller's (``sys.stderr``, for a human watching a run).
    Several plugins may share one sink: writes are serialised by a lock.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 stream: IO[str] | None = None) -> None:
        if path and stream is not None:
            raise ValueError("give an AuditSink a path or a stream, not both")
        self._owned = bool(path)
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else stream  # noqa: SIM115
        self._lock = threading.Lock()

    def emit(self, record: AuditRecord, kind: int) -> None:
        level = logging.INFO if kind == SECCOMP_RET_LOG else logging.WARNING
        if kind in (SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD):
            level = logging.ERROR
        if logger.isEnabledFor(level):
            logger.log(level, "plugin %s gate %s (#%d) args=%s action=%s outcome=%s",
                       record.plugin, record.gate, record.number, list(record.args),
                       record.action, record.outcome)
        if self._file is not None:
            line = record.to_json() + "\n"
            with self._lock:
                if self._file is not None:
                    self._file.write(line)
                    self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None and self._owned:
                self._file.close()
            self._file = None

    def __enter__(self) -> AuditSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def now() -> float:
    return time.time()
