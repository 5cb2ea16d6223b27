"""Run a lab's guests for real and describe what they saw, in words a student can act on.

The guests ship inside the package (``callgate/teach/labs/guests/``: links to
``guests/wasm/`` in a checkout, the files themselves in a wheel), so the labs need no
source tree. Every run is an in-process :class:`~callgate.runtime.plugin.Plugin` with
captured stdio and an audit sink whose JSON lines are read back as records.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from callgate.arch import GATE_ARCH
from callgate.arch.wasi_errno import WASI_ERRNO_NAMES
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    action_of,
    format_action,
)
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import Policy, PolicyError, load_policy_result
from callgate.policy.compiler import compile_policy
from callgate.policy.loaded import LoadResult
from callgate.policy.model import Layer
from callgate.runtime.audit import AuditRecord, AuditSink
from callgate.teach.labs.base import Stop, failed

if TYPE_CHECKING:
    from callgate.runtime.broker import Broker, GateRequest

#: wasi-libc's exit status (EX_OSERR) when its start-up scan of the preopens fails.
WASI_LIBC_INIT_FAILED = 71
#: How long one lab run of a guest may take (the guests are small; a hang is a bug).
RUN_TIMEOUT = 20.0


def guest_path(name: str) -> Path:
    """A shipped guest's file (``cat`` -> ``.../labs/guests/cat.wasm``)."""
    return Path(str(resources.files("callgate.teach.labs") / "guests" / f"{name}.wasm"))


def lab_file(name: str) -> str:
    """The text of a file the labs ship (starters, solutions, given policies)."""
    return (resources.files("callgate.teach.labs") / "files" / name).read_text()


def _records(stream: io.StringIO) -> list[AuditRecord]:
    """The records an audit sink wrote to ``stream``, read back from its JSON lines."""
    records = []
    for line in stream.getvalue().splitlines():
        fields = json.loads(line)
        fields["args"] = tuple(fields["args"])
        records.append(AuditRecord(**fields))
    return records


@dataclass
class GuestRun:
    """How one run of a WASI command went, and every non-ALLOW decision on the way."""

    command: str  # as a student would type it: "cat /data/notes.txt"
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None  # None: it did not exit (killed, trapped)
    killed: str | None = None  # "gate path_open (#31) answered KILL_PROCESS"
    error: str | None = None  # any other way the run ended
    records: list[AuditRecord] = field(default_factory=list)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Every gate call the guest made, allowed or not, in order (``watch=True``): (gate, args).
    calls_made: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    def calls(self, gate: str) -> int:
        """How many times the guest called ``gate`` (any verdict)."""
        return sum(self.counters.get(gate, {}).values())

    def verdicts(self, gate: str) -> dict[str, int]:
        """``gate``'s calls by verdict kind (``allow``, ``errno`` …), the ones that happened."""
        return {kind: n for kind, n in self.counters.get(gate, {}).items() if n}

    def ending(self) -> str:
        """How the run ended, in a few words."""
        if self.killed:
            return f"was killed: {self.killed}"
        if self.error:
            return f"failed: {self.error}"
        if self.exit_code == WASI_LIBC_INIT_FAILED:
            return (f"exited with status {self.exit_code} before main() ran: the C library "
                    "could not list its preopened directories")
        return f"exited with status {self.exit_code}"

    def summary(self, limit: int = 4) -> list[str]:
        """What the guest printed, how it ended, and the first calls the policy refused."""
        lines = [f"`{self.command}` {self.ending()}"]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text:
                lines.append(f"its {name}: {shorten(text)}")
        refused = [r for r in self.records if r.action not in ("LOG", "ALLOW")]
        for record in refused[:limit]:
            lines.append(f"refused: {describe_record(record)}")
        if len(refused) > limit:
            lines.append(f"... and {len(refused) - limit} more refused calls")
        if self.error and "unreachable" in self.error and any(
                r.gate == "proc_exit" for r in refused):
            lines.append("(proc_exit was refused, so the C library's exit fell through to "
                         "an `unreachable` trap: allow proc_exit)")
        return lines


def shorten(text: str, width: int = 100) -> str:
    """``text`` on one line, quoted, cut to ``width``."""
    flat = text.strip().replace("\n", " | ")
    return repr(flat if len(flat) <= width else flat[: width - 3] + "...")


_ERRNO_RE = re.compile(r"^ERRNO\((\d+)\)$")


def guest_errno(action: str) -> str | None:
    """``ERRNO(52)`` -> ``ENOSYS``: what a WASI guest reads from a gate's ERRNO verdict."""
    m = _ERRNO_RE.match(action)
    return WASI_ERRNO_NAMES.get(int(m[1]), m[1]) if m else None


def describe_record(record: AuditRecord) -> str:
    """``fd_write(2, …) answered ERRNO(52): the guest saw ENOSYS``."""
    shown = ", ".join(str(a) for a in record.args[:2])
    call = f"{record.gate}({shown}{', …' if len(record.args) > 2 else ''})"
    seen = guest_errno(record.action)
    if seen:
        return f"{call} answered {record.action}: the guest saw {seen}"
    return f"{call} answered {record.action} ({record.outcome})"


def watched(policy: Policy) -> Policy:
    """``policy`` with every ALLOW and LOG of its [gates] section turned into TRACE(0).

    With a tracer that answers None (run the gate), the guest sees exactly what it would
    have seen, and the tracer sees every call that ran, with its arguments.
    """
    section = policy.gates
    if section is None:
        return policy

    def traced(action: int) -> int:
        return SECCOMP_RET_TRACE if action_of(action) in _RUNS else action

    rules = tuple(replace(rule, action=traced(rule.action)) for rule in section.rules)
    return replace(policy, gates=replace(section, default=traced(section.default), rules=rules))


_RUNS = (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG)


def run_command(guest: str, policy: Policy | Sequence[Insn] | str | Path, args: Sequence[str],
                *, dirs: Sequence[tuple[Path, str]] = (), stdin: bytes = b"",
                broker: Broker | None = None, watch: bool = False) -> GuestRun:
    """Run WASI command ``guest`` with ``args`` under ``policy``; never raises for a
    guest that misbehaves or is stopped (that is what a lab wants to see).

    ``watch=True`` (a :class:`Policy` only) also records every call that ran in
    ``calls_made``, allowed ones included, without changing what the guest sees.
    """
    from callgate.gates.errors import GateViolation, PluginError
    from callgate.gates.spec import GuestExit
    from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
    from callgate.runtime.limits import Limits
    from callgate.runtime.plugin import Plugin

    stdout, stderr = bytearray(), bytearray()
    config = WasiConfig(args=[guest, *args], stdin=stdin, stdout=stdout, stderr=stderr,
                        preopens=[Preopen(host, name) for host, name in dirs])
    written = io.StringIO()  # the audit records, as an audit file holds them
    sink = AuditSink(stream=written, rate=None)
    run = GuestRun(" ".join([guest, *args]))
    source: Policy | Sequence[Insn] | Path = (
        Path(policy) if isinstance(policy, str | Path) else policy)
    if watch:
        if not isinstance(source, Policy):
            raise TypeError("watch=True needs a loaded Policy")
        source = watched(source)  # every call now leaves an audit record, in order
    try:
        with Plugin(guest_path(guest), policy=source, providers=[WasiProvider(config)],
                    audit=sink, broker=broker, tracer=_run_it if watch else None, name=guest,
                    limits=Limits(timeout=RUN_TIMEOUT)) as plugin:
            try:
                plugin.call_int("_start")
                run.exit_code = 0
            except GuestExit as exc:
                run.exit_code = exc.code
            except GateViolation as exc:
                run.killed = f"gate {exc.gate} (#{exc.number}) answered {exc.action}"
            except PluginError as exc:
                run.error = str(exc)
            except Exception as exc:  # raised by the student's broker, and re-raised here
                run.error = f"{type(exc).__name__}: {exc}"
            run.counters = plugin.counters
    except PluginError as exc:  # the plugin would not load: the policy, usually
        run.error = str(exc)
    run.stdout = stdout.decode(errors="replace")
    run.stderr = stderr.decode(errors="replace")
    sink.close()
    records = _records(written)
    # Under watch, TRACE is the watcher's own doing: the guest's real verdict was ALLOW or LOG.
    run.records = [r for r in records if not (watch and r.action.startswith("TRACE"))]
    if watch:
        run.calls_made = [(r.gate, r.args) for r in records]
    return run


def _run_it(request: GateRequest) -> None:
    """The tracer of a watched run: let every traced call run, as ALLOW would."""


def load_handin(path: Path) -> LoadResult:
    """A handed-in policy, or :class:`Stop` with the loader's own words."""
    try:
        return load_policy_result(path)
    except PolicyError as exc:
        raise Stop(failed(f"{path.name} loads as a policy", *str(exc).splitlines(),
                          f"`callgate check {path.name}` says the same, with hints")) from None
    except OSError as exc:
        raise Stop(failed(f"{path.name} can be read", str(exc))) from None


@cache
def _gate_program(policy: Policy) -> tuple[Insn, ...]:
    return tuple(compile_policy(policy, Layer.GATES, GATE_ARCH))


def gate_verdict(policy: Policy, gate: str, *args: int) -> int:
    """What ``policy``'s compiled ``[gates]`` filter answers to one call of ``gate``."""
    data = SeccompData.make(GATE_ARCH.number(gate), GATE_ARCH.audit_arch, args)
    return interpret(_gate_program(policy), data).ret


def verdict_text(ret: int) -> str:
    """``ERRNO(52) (ENOSYS)`` for a gate verdict; the action alone otherwise."""
    text = format_action(ret)
    seen = guest_errno(text)
    return f"{text} ({seen})" if seen else text
