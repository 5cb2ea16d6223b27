"""Jobs in, results out: the batch's JSON Lines formats (schema version 1, docs/batch.md).

A *job* line names a module and what the run gets (argv, stdin, env, files for its
scratch directory, the policy and limits); a *result* line says how the run ended and
what it left (exit status, capped stdout/stderr, collected files, per-gate counters,
the first violation, an audit summary, wall and CPU time). Both are plain JSON objects,
one per line. Bytes are written as a JSON string when they are valid UTF-8, and as
``{"base64": "..."}`` otherwise, in both directions.

Everything here is data: nothing parsed from a job line is ever executed, and a line
that cannot be used becomes an ``error`` result for that job, never the end of the batch.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from callgate.errors import CallgateError
from callgate.runtime.limits import Limits, LimitsError

SCHEMA_VERSION = 1

#: How a run ended (a result's ``status``), in the order docs/batch.md explains them.
STATUSES = (
    "ok",        # the guest exited 0 (or _start returned)
    "exit",      # the guest exited with another code: exit_code
    "killed",    # a gate's KILL verdict (policy): gate
    "kernel",    # the kernel seccomp filter killed the job's process (SIGSYS)
    "fuel",      # Limits.fuel ran out
    "deadline",  # Limits.timeout passed (in the guest, or the server killed the job)
    "memory",    # the linear-memory cap was reached and the run failed for it
    "output",    # Limits.output: stdout + stderr + file writes passed the cap
    "stack",     # Limits.stack: wasm stack overflow
    "trap",      # any other wasm trap: trap
    "crash",     # the job's process died of a signal or left no report: signal
    "refused",   # the module or policy could not be loaded (imports refused, invalid …)
    "error",     # the job line itself is unusable (bad JSON, missing module, bad limits …)
    "lost",      # the worker running it died; the job may not have run at all
)
#: Statuses that are the job's own doing; the rest (error, lost) are the batch's.
JOB_STATUSES = frozenset(STATUSES) - {"error", "lost"}

#: Limits fields a job may set (``timeout`` is also the job's wall-clock deadline).
LIMIT_FIELDS = ("fuel", "timeout", "memory", "output", "stack", "table_elements", "tables",
                "instances", "memories")
#: A batch runs no job without a deadline: this one applies when neither the job nor the
#: batch gives one.
DEFAULT_TIMEOUT = 10.0
DEFAULT_LIMITS = Limits(timeout=DEFAULT_TIMEOUT, output=4 * 1024 * 1024)

#: Caps on what one job line may carry (a job file is untrusted input too).
MAX_ARGV = 4096
MAX_FILES = 1024
MAX_INPUT_BYTES = 64 * 1024 * 1024  # stdin + files of one job
MAX_COLLECT = 256
MAX_ID = 256

_JOB_KEYS = frozenset({"schema", "id", "module", "argv", "stdin", "env", "files", "collect",
                       "policy", "limits", "meta"})


class BatchError(CallgateError, ValueError):
    """A job (or batch option) that cannot be used; the message says which field and why."""


# --- bytes in JSON -----------------------------------------------------------------------


def encode_bytes(data: bytes) -> str | dict[str, str]:
    """``data`` as a JSON value: a string when it is UTF-8, else ``{"base64": ...}``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: object, what: str) -> bytes:
    """The inverse of :func:`encode_bytes`; ``what`` names the field in errors."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise BatchError(f"{what}: not valid base64") from None
    raise BatchError(f"{what} must be a string or {{\"base64\": \"...\"}}, got {_show(value)}")


# --- jobs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run: a module and everything it is given. See docs/batch.md for each field.

    ``module`` is a path (relative paths resolve against the batch's base directory) or
    ``sha256:HEX``, a digest in the batch's module store. ``policy`` is a policy file,
    ``"default"`` or ``"default+fs"`` (shipped), or None for the batch's policy.
    ``limits`` holds only the fields this job sets; the rest come from the batch.
    """

    module: str
    id: str | None = None
    argv: tuple[str, ...] | None = None
    stdin: bytes = b""
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)
    collect: tuple[str, ...] = ()
    policy: str | None = None
    limits: Mapping[str, int | float] = field(default_factory=dict)
    meta: Any = None

    def __post_init__(self) -> None:
        check_job(self)

    @classmethod
    def from_json(cls, obj: object) -> Job:
        """A job from its JSON object (one line of a jobs file)."""
        if not isinstance(obj, dict):
            raise BatchError(f"a job must be a JSON object, got {_show(obj)}")
        unknown = sorted(set(obj) - _JOB_KEYS)
        if unknown:
            raise BatchError(f"unknown job field(s) {', '.join(unknown)} (known: "
                             f"{', '.join(sorted(_JOB_KEYS))})")
        schema = obj.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise BatchError(f"job schema {schema!r} is not supported (this callgate reads "
                             f"schema {SCHEMA_VERSION})")
        if "module" not in obj:
            raise BatchError("a job needs a 'module' (a path, or sha256:HEX in the module store)")
        argv = obj.get("argv")
        files = obj.get("files", {})
        if not isinstance(files, dict):
            raise BatchError(f"files must be an object of path: content, got {_show(files)}")
        collect = obj.get("collect", [])
        if not isinstance(collect, list):
            raise BatchError(f"collect must be a list of paths, got {_show(collect)}")
        env = obj.get("env", {})
        if not isinstance(env, dict):
            raise BatchError(f"env must be an object of name: value, got {_show(env)}")
        limits = obj.get("limits", {})
        if not isinstance(limits, dict):
            raise BatchError(f"limits must be an object, got {_show(limits)}")
        return cls(
            module=obj["module"],
            id=obj.get("id"),
            argv=tuple(argv) if isinstance(argv, list) else argv,
            stdin=decode_bytes(obj.get("stdin", ""), "stdin"),
            env=env,
            files={k: decode_bytes(v, f"files[{k!r}]") for k, v in files.items()},
            collect=tuple(collect),
            policy=obj.get("policy"),
            limits=limits,
            meta=obj.get("meta"),
        )

    def to_json(self) -> dict[str, Any]:
        """The job as its JSON object (what :meth:`from_json` reads back)."""
        out: dict[str, Any] = {"module": self.module}
        if self.id is not None:
            out["id"] = self.id
        if self.argv is not None:
            out["argv"] = list(self.argv)
        if self.stdin:
            out["stdin"] = encode_bytes(self.stdin)
        if self.env:
            out["env"] = dict(self.env)
        if self.files:
            out["files"] = {k: encode_bytes(v) for k, v in self.files.items()}
        if self.collect:
            out["collect"] = list(self.collect)
        if self.policy is not None:
            out["policy"] = self.policy
        if self.limits:
            out["limits"] = dict(self.limits)
        if self.meta is not None:
            out["meta"] = self.meta
        return out


def check_job(job: Job) -> None:
    """Raise :class:`BatchError` naming the first field of ``job`` that cannot be used."""
    if not isinstance(job.module, str) or not job.module or "\0" in job.module:
        raise BatchError(f"module must be a non-empty path or sha256:HEX, got {_show(job.module)}")
    if job.id is not None and (not isinstance(job.id, str) or not job.id
                               or len(job.id) > MAX_ID):
        raise BatchError(f"id must be a non-empty string of at most {MAX_ID} characters, "
                         f"got {_show(job.id)}")
    if job.argv is not None and (
            not isinstance(job.argv, tuple) or len(job.argv) > MAX_ARGV
            or not all(isinstance(a, str) and "\0" not in a for a in job.argv)):
        raise BatchError(f"argv must be a list of at most {MAX_ARGV} strings without NUL "
                         f"(argv[0] included), got {_show(job.argv)}")
    for key, value in job.env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise BatchError(f"env name {_show(key)} must be a non-empty string without '=' "
                             "or NUL")
        if not isinstance(value, str) or "\0" in value:
            raise BatchError(f"env[{key!r}] must be a string without NUL, got {_show(value)}")
    if len(job.files) > MAX_FILES:
        raise BatchError(f"at most {MAX_FILES} files per job, got {len(job.files)}")
    for name in job.files:
        scratch_path(name, "files")
        parent = posixpath.dirname(name)
        while parent:
            if parent in job.files:
                raise BatchError(f"files: {parent!r} is a file, so {name!r} cannot be in it")
            parent = posixpath.dirname(parent)
    size = len(job.stdin) + sum(len(v) for v in job.files.values())
    if size > MAX_INPUT_BYTES:
        raise BatchError(f"stdin and files of one job are {size} bytes; at most "
                         f"{MAX_INPUT_BYTES}")
    if len(job.collect) > MAX_COLLECT:
        raise BatchError(f"collect names at most {MAX_COLLECT} paths, got {len(job.collect)}")
    for name in job.collect:
        scratch_path(name, "collect")
    if job.policy is not None and (not isinstance(job.policy, str) or not job.policy):
        raise BatchError(f"policy must be a path, 'default' or 'default+fs', got "
                         f"{_show(job.policy)}")
    unknown = sorted(set(job.limits) - set(LIMIT_FIELDS))
    if unknown:
        raise BatchError(f"unknown limit(s) {', '.join(unknown)} (known: "
                         f"{', '.join(LIMIT_FIELDS)})")
    merged_limits(DEFAULT_LIMITS, job.limits)  # range and type checks, as Limits does


def scratch_path(name: object, what: str) -> str:
    """``name`` as a relative path inside the scratch directory, or :class:`BatchError`."""
    if not isinstance(name, str) or not name or "\0" in name or len(name) > 4096:
        raise BatchError(f"{what}: {_show(name)} is not a file name")
    norm = posixpath.normpath(name)
    if name.startswith("/") or norm == "." or norm.startswith("../") or norm == "..":
        raise BatchError(f"{what}: {name!r} must be a relative path inside the job's scratch "
                         "directory (no leading /, no ..)")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise BatchError(f"{what}: {name!r} must be a plain relative path (no empty, . or .. "
                         "components)")
    return name


def merged_limits(base: Limits, overrides: Mapping[str, object]) -> Limits:
    """``base`` with the job's ``overrides``; a value Limits refuses is a BatchError."""
    fields = {name: getattr(base, name) for name in LIMIT_FIELDS}
    for name, value in overrides.items():
        if isinstance(value, float) and name != "timeout" and value.is_integer():
            value = int(value)  # JSON writers that print 1e9 for an int
        fields[name] = value
    if fields["timeout"] is None:
        fields["timeout"] = DEFAULT_TIMEOUT
    try:
        return Limits(**fields)  # checked by Limits itself
    except LimitsError as exc:
        raise BatchError(f"limits: {exc}") from None
    except TypeError as exc:  # a field of the wrong kind for Limits' comparisons
        raise BatchError(f"limits: {exc}") from None


def limits_json(limits: Limits) -> dict[str, Any]:
    return {name: getattr(limits, name) for name in LIMIT_FIELDS}


# --- reading a jobs file -----------------------------------------------------------------


@dataclass(frozen=True)
class JobLine:
    """One line of a jobs file: its index (0-based, blank lines and comments skipped), the
    job, or why it cannot be used (``error``, with the id if one could be read)."""

    index: int
    job: Job | None
    error: str | None = None
    id: str | None = None

    @property
    def job_id(self) -> str:
        if self.job is not None and self.job.id is not None:
            return self.job.id
        return self.id if self.id is not None else str(self.index)


def read_jobs(lines: Iterable[str]) -> Iterator[JobLine]:
    """Parse a jobs file lazily: one :class:`JobLine` per non-blank line that is not a
    ``#`` comment. A line that is not a usable job gives a JobLine with ``error``."""
    index = 0
    for line_no, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            yield JobLine(index, None, f"line {line_no}: not JSON: {exc}")
        else:
            given = obj.get("id") if isinstance(obj, dict) else None
            try:
                yield JobLine(index, Job.from_json(obj))
            except BatchError as exc:
                yield JobLine(index, None, f"line {line_no}: {exc}",
                              given if isinstance(given, str) and given else None)
        index += 1


def count_jobs(lines: Iterable[str]) -> int:
    """How many jobs :func:`read_jobs` will yield (for a progress total), without parsing."""
    return sum(1 for raw in lines if raw.strip() and not raw.lstrip().startswith("#"))


# --- results -----------------------------------------------------------------------------


def error_result(index: int, job_id: str, status: str, detail: str,
                 meta: Any = None, worker: str | None = None) -> dict[str, Any]:
    """A result for a job that did not run to a report of its own (error, lost)."""
    result = empty_result(index, job_id, meta)
    result.update(status=status, detail=detail, worker=worker)
    return result


def empty_result(index: int, job_id: str, meta: Any = None) -> dict[str, Any]:
    """Every result field, at its "nothing happened" value; the runner fills it in."""
    result: dict[str, Any] = {
        "schema": SCHEMA_VERSION, "id": job_id, "index": index, "status": "error",
        "exit_code": None, "detail": "", "gate": None, "signal": None, "trap": None,
        "stdout": "", "stdout_bytes": 0, "stderr": "", "stderr_bytes": 0, "files": {},
        "counters": {}, "first_violation": None, "audit": {"records": 0, "by_gate": {}},
        "memory_bytes": 0, "time": {"wall_s": 0.0, "cpu_s": 0.0}, "worker": None,
    }
    if meta is not None:
        result["meta"] = meta
    return result


#: Result fields that describe *where and how fast* a job ran, not what it did; two
#: engines running the same batch agree on everything else (tests compare so).
VOLATILE_FIELDS = ("time", "worker")


def comparable(result: Mapping[str, Any]) -> dict[str, Any]:
    """``result`` without :data:`VOLATILE_FIELDS`."""
    return {k: v for k, v in result.items() if k not in VOLATILE_FIELDS}


def check_result(result: object) -> dict[str, Any]:
    """A result as received from a worker, checked to be the documented shape (it came
    from a process that ran hostile code: it is data to validate, not to trust)."""
    if not isinstance(result, dict):
        raise BatchError("a result must be a JSON object")
    expected = empty_result(0, "")
    missing = sorted(set(expected) - set(result))
    if missing:
        raise BatchError(f"result lacks {', '.join(missing)}")
    if result["status"] not in STATUSES:
        raise BatchError(f"result status {result['status']!r} is not one of {STATUSES}")
    for key in ("stdout_bytes", "stderr_bytes", "memory_bytes", "index"):
        if not isinstance(result[key], int) or result[key] < 0:
            raise BatchError(f"result {key} must be a non-negative int")
    wall, cpu = result["time"].get("wall_s"), result["time"].get("cpu_s")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (wall, cpu)):
        raise BatchError("result time must hold finite wall_s and cpu_s")
    return result


def dumps(result: Mapping[str, Any]) -> str:
    """One result as its JSON line (no newline)."""
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
