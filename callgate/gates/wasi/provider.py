"""The WASI preview1 gate provider and its per-plugin state.

``WasiProvider(WasiConfig(...))`` serves module ``wasi_snapshot_preview1``: every
witx function as a gate numbered by :mod:`callgate.arch.gate_numbers`. Each plugin
gets a fresh :class:`WasiState` (its own fd table with preopens and stdio),
closed — every host fd with it — when the plugin closes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callgate.errors import CallgateError
from callgate.arch.gate_numbers import WASI_GATES, WASI_MODULE, WASI_NUMBERS
from callgate.gates.spec import GateSpec

# Importing the gate modules registers their gates in GATE_DEFS.
from callgate.gates.wasi import clocks, fd, path, poll, proc, sock  # noqa: F401
from callgate.gates.wasi import types as T
from callgate.gates.wasi.fdtable import FdEntry, FdTable, socket_entry, stdio_entry
from callgate.gates.wasi.gate import GATE_DEFS


class WasiConfigError(CallgateError):
    """A preopen, stdio or socket setting that cannot be honoured."""


@dataclass(frozen=True)
class Preopen:
    """A host directory the guest sees at ``guest`` (read-only if ``readonly``)."""

    host: str | os.PathLike[str]
    guest: str
    readonly: bool = False


@dataclass
class WasiConfig:
    """What a WASI guest is given.

    * ``args``: argv (``args[0]`` is the program name by convention);
    * ``env``: the whole environment (nothing is inherited from the host);
    * ``preopens``: directories, fds 3, 4, … in order;
    * ``stdin``: bytes to feed, or ``"inherit"``; ``stdout``/``stderr``: a
      ``bytearray`` to capture into, or ``"inherit"``;
    * ``sockets``: host sockets handed to the guest (fds after the preopens);
      callgate dups them, the caller keeps its own;
    * ``max_fds``: the fd-table limit (EMFILE past it).
    """

    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    preopens: Sequence[Preopen] = ()
    stdin: bytes | str = b""
    stdout: bytearray | str = "inherit"
    stderr: bytearray | str = "inherit"
    sockets: Sequence[socket.socket] = ()
    max_fds: int = 1024


def _encoded(items: Sequence[str]) -> list[bytes]:
    return [item.encode("utf-8") + b"\0" for item in items]


class WasiState:
    """One plugin's WASI world: fd table, argv and environment blobs."""

    def __init__(self, config: WasiConfig) -> None:
        self.config = config
        self.args = _encoded(config.args)
        self.env = _encoded([f"{k}={v}" for k, v in config.env.items()])
        self.table = FdTable(config.max_fds)
        try:
            for which, mode in enumerate((config.stdin, config.stdout, config.stderr)):
                self.table.add(stdio_entry(which, mode))
            for pre in config.preopens:
                self.table.add(_open_preopen(pre))
            for sk in config.sockets:
                self.table.add(socket_entry(socket.socket(fileno=os.dup(sk.fileno()))))
        except BaseException:
            self.table.close_all()
            raise

    def close(self) -> None:
        """Close every host fd the guest still holds."""
        self.table.close_all()


def _open_preopen(pre: Preopen) -> FdEntry:
    guest = pre.guest
    if not guest or "\0" in guest:
        raise WasiConfigError(f"preopen guest path {guest!r} must be a non-empty path")
    try:
        host_fd = os.open(pre.host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise WasiConfigError(f"cannot preopen {str(pre.host)!r} as {guest!r}: "
                              f"{exc.strerror}; give an existing directory") from None
    return FdEntry(T.FILETYPE_DIRECTORY, T.RIGHTS_DIRECTORY, T.RIGHTS_DIRECTORY_INHERITING,
                   host_fd=host_fd, preopen=guest, readonly=pre.readonly)


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

    def instance_state(self, plugin: Any) -> WasiState:
        del plugin
        return WasiState(self.config)


def preopen_arg(spec: str) -> Preopen:
    """``HOST::GUEST[:ro]`` (or ``DIR``, seen at the same path) -> Preopen."""
    readonly = spec.endswith(":ro")
    body = spec[:-3] if readonly else spec
    host, sep, guest = body.partition("::")
    if not sep:
        guest = host
    if not host or not guest:
        raise WasiConfigError(f"--dir {spec!r}: expected HOST::GUEST[:ro], e.g. ./data::/data")
    return Preopen(Path(host), guest, readonly)
