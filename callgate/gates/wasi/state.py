"""A WASI guest's configuration and per-plugin state, and the type of a WASI gate call.

Kept apart from :mod:`~callgate.gates.wasi.provider` so the gate modules can name
:data:`WasiCall` (``GateCall[WasiState]``) without importing the provider, which
imports them to register their gates.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from callgate.errors import CallgateError
from callgate.gates.spec import GateCall
from callgate.gates.wasi import capfs, types as T
from callgate.gates.wasi.fdtable import FdEntry, FdTable, socket_entry, stdio_entry


class WasiConfigError(CallgateError):
    """A preopen, stdio or socket setting that cannot be honoured."""


@dataclass(frozen=True)
class Preopen:
    """A host directory the guest sees at ``guest`` (read-only if ``readonly``)."""

    host: str | os.PathLike[str]
    guest: str
    readonly: bool = False
    #: The host opts in to a preopen that is a pseudo filesystem (procfs, sysfs …):
    #: refused otherwise, because their files are views of the host's own state.
    pseudo_fs: bool = False


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
    pseudo = capfs.pseudo_fs_name(host_fd)
    if pseudo is not None and not pre.pseudo_fs:
        os.close(host_fd)
        raise WasiConfigError(
            f"cannot preopen {str(pre.host)!r} as {guest!r}: it is on {pseudo}, a pseudo "
            "filesystem whose files expose the host's own state; preopen a real directory, "
            "or opt in with Preopen(..., pseudo_fs=True) (--dir HOST::GUEST:pseudo)")
    return FdEntry(T.FILETYPE_DIRECTORY, T.RIGHTS_DIRECTORY, T.RIGHTS_DIRECTORY_INHERITING,
                   host_fd=host_fd, preopen=guest, readonly=pre.readonly)


#: What every WASI gate receives: a gate call whose ``state`` is the plugin's WasiState.
WasiCall = GateCall[WasiState]
