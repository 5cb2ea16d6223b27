"""The WASI preview1 gate provider.

``WasiProvider(WasiConfig(...))`` serves module ``wasi_snapshot_preview1``: every
witx function as a gate numbered by :mod:`callgate.arch.gate_numbers`. Each plugin
gets a fresh :class:`WasiState` (its own fd table with preopens and stdio),
closed — every host fd with it — when the plugin closes. The configuration and
state classes live in :mod:`callgate.gates.wasi.state` and are re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from callgate.arch.gate_numbers import WASI_GATES, WASI_MODULE, WASI_NUMBERS
from callgate.gates.host import GateHost
from callgate.gates.spec import GateSpec

# Importing the gate modules registers their gates in GATE_DEFS.
from callgate.gates.wasi import clocks, fd, path, poll, proc, sock  # noqa: F401
from callgate.gates.wasi.gate import GATE_DEFS
from callgate.gates.wasi.state import (
    Preopen,
    WasiCall,
    WasiConfig,
    WasiConfigError,
    WasiState,
)

__all__ = ["Preopen", "WasiCall", "WasiConfig", "WasiConfigError", "WasiProvider", "WasiState",
           "preopen_arg", "wasi_specs"]


def _errno_results(n: int) -> tuple[int, ...]:
    return (n,)


def _no_results(n: int) -> tuple[int, ...]:
    del n  # proc_exit has no result to carry an errno; the guest continues (and traps)
    return ()


def wasi_specs() -> tuple[GateSpec, ...]:
    """Every preview1 function as a GateSpec, in witx order."""
    missing = [name for name in WASI_GATES if name not in GATE_DEFS]
    if missing:
        raise WasiConfigError(f"WASI gates not implemented: {', '.join(missing)}")
    specs = []
    for name in WASI_GATES:
        d = GATE_DEFS[name]
        specs.append(GateSpec(WASI_MODULE, name, WASI_NUMBERS[name], d.params, d.results, d.func,
                              _errno_results if d.results else _no_results, d.syscalls, d.doc,
                              d.uses_memory))
    return tuple(specs)


_SPECS = wasi_specs()


class WasiProvider:
    """Gate provider for ``wasi_snapshot_preview1`` (see :class:`WasiConfig`)."""

    module = WASI_MODULE

    def __init__(self, config: WasiConfig | None = None) -> None:
        self.config = config or WasiConfig()

    def specs(self) -> tuple[GateSpec, ...]:
        return _SPECS

    def instance_state(self, plugin: GateHost) -> WasiState:
        del plugin
        return WasiState(self.config)


def preopen_arg(spec: str) -> Preopen:
    """``HOST::GUEST[:ro][:pseudo]`` (or ``DIR``, seen at the same path) -> Preopen.

    ``:ro`` makes it read-only; ``:pseudo`` opts in to a pseudo filesystem (procfs …).
    """
    body, options = spec, set()
    while (tail := body.rpartition(":")[2]) in ("ro", "pseudo") and body != tail:
        options.add(tail)
        body = body[:-len(tail) - 1]
    host, sep, guest = body.partition("::")
    if not sep:
        guest = host
    if not host or not guest:
        raise WasiConfigError(f"--dir {spec!r}: expected HOST::GUEST[:ro], e.g. ./data::/data")
    return Preopen(Path(host), guest, "ro" in options, "pseudo" in options)
