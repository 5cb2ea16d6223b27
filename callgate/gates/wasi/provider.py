"""The WASI preview1 gate provider.

``WasiProvider(WasiConfig(...))`` serves module ``wasi_snapshot_preview1``: every
witx function as a gate numbered by :mod:`callgate.arch.gate_numbers`. Each plugin
gets a fresh :class:`WasiState` (its own fd table with preopens and stdio),
closed — every host fd with it — when the plugin closes. The configuration and
state classes live in :mod:`callgate.gates.wasi.state` and are re-exported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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

__all__ = ["Preopen", "PreopenSpec", "WasiCall", "WasiConfig", "WasiConfigError", "WasiProvider",
           "WasiState", "parse_preopen", "preopen_arg", "wasi_specs"]


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


# Option words a --dir spec may end with, after a colon.
_DIR_OPTIONS = ("ro", "rw", "pseudo")
DIR_SYNTAX = ("HOST::GUEST[:ro] (callgate's form, e.g. ./data::/data:ro) or HOST:GUEST[:ro] "
              "(Docker's, when no path has a colon, e.g. ./data:/data:ro)")


@dataclass(frozen=True)
class PreopenSpec:
    """A parsed ``--dir``: the preopen, and which form the text was written in.

    ``form`` is ``"callgate"`` (``HOST::GUEST``), ``"docker"`` (``HOST:GUEST``) or
    ``"same"`` (``DIR``: the host path, seen at the same path); ``text`` is the spec as
    written.
    """

    preopen: Preopen
    form: str
    text: str  # as written

    def describe(self) -> str:
        """What the spec was understood as, in words (``host dir ./data as guest /data, …``)."""
        p = self.preopen
        mode = "read-only" if p.readonly else "read-write"
        pseudo = ", a pseudo filesystem allowed" if p.pseudo_fs else ""
        return f"host directory {str(p.host)!r} as guest {p.guest!r}, {mode}{pseudo}"

    def canonical(self) -> str:
        """The same preopen in callgate's own ``HOST::GUEST[:ro][:pseudo]`` form."""
        p = self.preopen
        return (f"{p.host}::{p.guest}" + (":ro" if p.readonly else "")
                + (":pseudo" if p.pseudo_fs else ""))


def parse_preopen(spec: str) -> PreopenSpec:
    """``--dir`` text -> :class:`PreopenSpec`; :class:`WasiConfigError` if it cannot be read.

    Three forms, each with optional ``:ro`` (read-only), ``:rw`` (the default) and
    ``:pseudo`` (opt in to a pseudo filesystem such as ``/proc``) at the end:

    * ``HOST::GUEST`` - callgate's form; either path may contain single colons;
    * ``HOST:GUEST`` - Docker's ``-v`` form, read so only when it is unambiguous: one
      colon, and no host path of that whole name exists;
    * ``DIR`` - no colon: the host directory seen at the same path.

    Anything else (two single colons, a host path that itself has a colon) is refused
    with a message that shows both syntaxes.
    """
    body, options = spec, set()
    while (tail := body.rpartition(":")[2]) in _DIR_OPTIONS and body != tail:
        options.add(tail)
        body = body[:-len(tail) - 1]
    if {"ro", "rw"} <= options:
        raise WasiConfigError(f"--dir {spec!r}: both :ro and :rw; give one")
    if "::" in body:
        form = "callgate"
        host, _, guest = body.partition("::")
    elif ":" not in body:
        form, host, guest = "same", body, body
    else:
        form = "docker"
        host, _, guest = body.partition(":")
        if ":" in guest or os.path.lexists(body):
            why = ("more than one ':'" if ":" in guest
                   else f"a host path named {body!r} exists")
            raise WasiConfigError(f"--dir {spec!r} is ambiguous ({why}); write {DIR_SYNTAX}")
    if not host or not guest:
        raise WasiConfigError(f"--dir {spec!r}: expected {DIR_SYNTAX}")
    return PreopenSpec(Preopen(Path(host), guest, "ro" in options, "pseudo" in options), form,
                       spec)


def preopen_arg(spec: str) -> Preopen:
    """``HOST::GUEST[:ro][:pseudo]``, ``HOST:GUEST[:ro]`` (Docker's form, when unambiguous)
    or ``DIR`` -> Preopen (see :func:`parse_preopen`)."""
    return parse_preopen(spec).preopen
