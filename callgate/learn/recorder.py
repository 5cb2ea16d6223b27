"""The learning run: the guest runs with every gate allowed, and every gate call is recorded.

The run's ``[gates]`` policy is one line, ``default = "log"``: LOG lets every call
through and makes the runtime produce an :class:`~callgate.runtime.audit.AuditRecord`
for it (gate, all arguments). A :class:`RecordingSink` takes those records in
place of an audit file and keeps only what a policy can use: per gate, the number of
calls and the distinct values of its pinnable arguments (see :mod:`.argkinds`), with
a cap, so a guest that calls a gate a billion times costs a counter, not a log.

The run is bounded like ``callgate run`` (fuel, timeout, memory) and gets only the
directories and environment it is given: allowing every gate is safe in the sense that
the capability filesystem still confines every path to the preopens.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from callgate.errors import CallgateError
from callgate.gates.errors import AbiError, PluginError, PluginLoadError
from callgate.gates.spec import GateSpec, GuestExit
from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.learn.argkinds import pinnable
from callgate.runtime.audit import AuditRecord, AuditSink
from callgate.runtime.limits import Limits
from callgate.runtime.plugin import Plugin

LEARNING_POLICY = '[gates]\n# allow every gate, and audit (record) every call\ndefault = "log"\n'

# Distinct argument tuples kept per gate; past this the gate's arguments stay unpinned.
MAX_DISTINCT = 4096


class LearningFailed(CallgateError):
    """The learning run did not finish normally, so no policy can be learned from it."""


@dataclass(slots=True)
class GateUse:
    """How one gate was used: ``calls``, and the calls per tuple of ``pinned`` argument values.

    ``overflow`` says more than :data:`MAX_DISTINCT` tuples were seen; ``values`` is then
    incomplete and must not be turned into rules.
    """

    calls: int = 0
    pinned: tuple[int, ...] = ()
    values: dict[tuple[int, ...], int] = field(default_factory=dict)
    overflow: bool = False

    def add(self, args: tuple[int, ...]) -> None:
        self.calls += 1
        key = tuple(args[i] for i in self.pinned)
        if key in self.values:
            self.values[key] += 1
        elif len(self.values) < MAX_DISTINCT:
            self.values[key] = 1
        else:
            self.overflow = True


class RecordingSink(AuditSink):
    """An audit sink that folds every record into per-gate :class:`GateUse`\\ s, in memory."""

    def __init__(self, specs: Iterable[GateSpec]) -> None:
        super().__init__(None)
        self._pinned = {spec.name: pinnable(spec) for spec in specs}
        self.uses: dict[str, GateUse] = {}  # in order of first call

    def emit(self, record: AuditRecord, kind: int) -> None:
        use = self.uses.get(record.gate)
        if use is None:
            use = self.uses[record.gate] = GateUse(pinned=self._pinned.get(record.gate, ()))
        use.add(record.args)


@dataclass(frozen=True, slots=True)
class Recording:
    """What one learning run did: the gates it called, and how the guest ended."""

    uses: dict[str, GateUse]
    exit_code: int

    def to_json(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code,
                "uses": {name: {"calls": u.calls, "pinned": list(u.pinned),
                                "values": [[list(k), n] for k, n in u.values.items()],
                                "overflow": u.overflow} for name, u in self.uses.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recording:
        uses = {name: GateUse(u["calls"], tuple(u["pinned"]),
                              {tuple(k): n for k, n in u["values"]}, u["overflow"])
                for name, u in data["uses"].items()}
        return cls(uses, data["exit_code"])


def record(module: str | os.PathLike[str] | bytes, config: WasiConfig,
           limits: Limits | None = None, *, on_begin: Callable[[], object] | None = None,
           on_end: Callable[[], object] | None = None) -> Recording:
    """Run WASI command ``module`` once with every gate allowed and recorded.

    ``on_begin`` runs once the plugin is compiled and instantiated (where ``callgate
    run --kernel`` locks down), ``on_end`` when ``_start`` has returned: the span whose
    host syscalls a watcher (:mod:`.kernel_trace`) learns from.
    Raises :class:`LearningFailed` if the guest traps or runs out of a limit.
    """
    provider = WasiProvider(config)
    sink = RecordingSink(provider.specs())
    try:
        with Plugin(module, policy=LEARNING_POLICY, providers=[provider], limits=limits,
                    audit=sink) as plugin:
            if on_begin is not None:
                on_begin()
            try:
                plugin.call_int("_start")
                code = 0
            except GuestExit as exc:
                code = exc.code & 0xFF
            finally:
                if on_end is not None:
                    on_end()
    except PluginLoadError:
        raise
    except AbiError as exc:
        what = "the module" if isinstance(module, bytes) else str(module)  # not its bytes' repr
        raise LearningFailed(f"{what} is not a WASI command ({exc}); callgate learn runs "
                             "a command's _start") from None
    except PluginError as exc:
        raise LearningFailed(f"the learning run did not finish: {exc}. A policy learned from "
                             "a run that was cut short would miss what the rest of the run "
                             "needs, so none was written; give the run more --fuel, "
                             "--timeout or --memory, or fix the guest") from None
    return Recording(dict(sink.uses), code)
