"""A WASI guest's configuration and per-plugin state, and the type of a WASI gate call.

Kept apart from :mod:`~callgate.gates.wasi.provider` so the gate modules can name
:data:`WasiCall` (``GateCall[WasiState]``) without importing the provider, which
imports them to register their gates.
"""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from callgate.errors import CallgateError
from callgate.gates.spec import GateCall
from callgate.gates.wasi import capfs, types as T
from callgate.gates.wasi.fdtable import FdEntry, FdTable, socket_entry, stdio_entry


class WasiConfigError(CallgateError, ValueError):
    """A WasiConfig setting (args, env, preopen, stdio, socket, max_fds) that cannot be
    honoured."""


#: ``WasiConfig.max_fds`` by default: well under the usual soft RLIMIT_NOFILE (1024).
DEFAULT_MAX_FDS = 256
#: A plugin's fd table never takes more than 1/HOST_SHARE of the fds the process has
#: free (soft RLIMIT_NOFILE minus fds open) when the plugin starts.
HOST_SHARE = 2
STDIO_FDS = 3


@dataclass(frozen=True)
class Preopen:
    """A host directory the guest sees at ``guest`` (read-only if ``readonly``)."""

    host: str | os.PathLike[str]
    guest: str
    readonly: bool = False
    #: The host opts in to a preopen that is a pseudo filesystem (procfs, sysfs …):
    #: refused otherwise, because their files are views of the host's own state.
    pseudo_fs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.host, (str, os.PathLike)) or not str(self.host):
            raise WasiConfigError(f"Preopen host {self.host!r} must be a non-empty path "
                                  "(str or PathLike)")
        if not isinstance(self.guest, str) or not self.guest or "\0" in self.guest:
            raise WasiConfigError(f"preopen guest path {self.guest!r} must be a non-empty path "
                                  "without NUL")


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
    * ``max_fds``: the fd-table limit (EMFILE past it), at least the fds the
      configuration itself hands over (3 + preopens + sockets). The table a plugin
      gets is also never more than half the fds the process has free when it
      starts (:func:`fd_table_size`), so a guest cannot starve the host of fds.

    Every field is checked when the config is made (and again when a plugin uses it):
    :class:`WasiConfigError` says which is wrong.
    """

    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    preopens: Sequence[Preopen] = ()
    stdin: bytes | str = b""
    stdout: bytearray | str = "inherit"
    stderr: bytearray | str = "inherit"
    sockets: Sequence[socket.socket] = ()
    max_fds: int = DEFAULT_MAX_FDS

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`WasiConfigError` naming the first field that cannot be honoured."""
        _check_strings("args", self.args)
        if not isinstance(self.env, Mapping):
            raise WasiConfigError(f"WasiConfig.env must be a mapping of str to str, got "
                                  f"{type(self.env).__name__}")
        for key, value in self.env.items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key:
                raise WasiConfigError(f"WasiConfig.env key {key!r} must be a non-empty str "
                                      "without '=' or NUL")
            if not isinstance(value, str) or "\0" in value:
                raise WasiConfigError(f"WasiConfig.env[{key!r}] must be a str without NUL, "
                                      f"got {value!r}")
        for name in ("preopens", "sockets"):
            if isinstance(getattr(self, name), (str, bytes)):
                raise WasiConfigError(f"WasiConfig.{name} must be a sequence, not a "
                                      f"{type(getattr(self, name)).__name__}")
        for pre in self.preopens:
            if not isinstance(pre, Preopen):
                raise WasiConfigError(f"WasiConfig.preopens holds {pre!r}; give Preopen(host, "
                                      "guest, readonly=False) items")
        for sk in self.sockets:
            if not isinstance(sk, socket.socket):
                raise WasiConfigError(f"WasiConfig.sockets holds {sk!r}; give socket.socket "
                                      "objects")
        if not (self.stdin is None or self.stdin == "inherit"
                or isinstance(self.stdin, (bytes, bytearray, memoryview))):
            raise WasiConfigError(f"WasiConfig.stdin must be bytes to feed or 'inherit', got "
                                  f"{self.stdin!r}")
        for name in ("stdout", "stderr"):
            mode = getattr(self, name)
            if not (mode is None or mode == "inherit" or isinstance(mode, bytearray)):
                raise WasiConfigError(f"WasiConfig.{name} must be a bytearray to capture into "
                                      f"or 'inherit', got {mode!r}")
        max_fds = self.max_fds
        if isinstance(max_fds, bool) or not isinstance(max_fds, int):
            raise WasiConfigError(f"WasiConfig.max_fds must be an int, got {max_fds!r}")
        if max_fds < self.fixed_fds():
            raise WasiConfigError(
                f"WasiConfig.max_fds={max_fds} leaves no room for the fds the config itself "
                f"hands over (stdio, {len(self.preopens)} preopen(s), {len(self.sockets)} "
                f"socket(s)): give at least {self.fixed_fds()}")

    def fixed_fds(self) -> int:
        """The fds the guest is given before it runs: stdio, preopens, sockets."""
        return STDIO_FDS + len(self.preopens) + len(self.sockets)

    def check_preopens(self) -> None:
        """Open (and close) every preopened directory now: a missing one is an error
        here, even for a guest that never touches the filesystem."""
        for pre in self.preopens:
            _open_preopen(pre).release()


def _check_strings(name: str, items: object) -> None:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise WasiConfigError(f"WasiConfig.{name} must be a sequence of str (a list), got "
                              f"{items!r}")
    for item in items:
        if not isinstance(item, str) or "\0" in item:
            raise WasiConfigError(f"WasiConfig.{name} holds {item!r}; give str items "
                                  "without NUL")


def _fds_open() -> int:
    """How many fds this process has open (0 when /proc cannot tell)."""
    try:
        return max(0, len(os.listdir("/proc/self/fd")) - 1)  # not the one listdir used
    except OSError:
        return 0


def fd_table_size(config: WasiConfig) -> int:
    """The fd table a plugin gets now: ``config.max_fds``, but at most 1/:data:`HOST_SHARE`
    of the fds the process has free under its soft RLIMIT_NOFILE, and never less
    than the fds the config itself hands over."""
    size = config.max_fds
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        size = min(size, max(0, soft - _fds_open()) // HOST_SHARE)
    return max(size, config.fixed_fds())


def _encoded(items: Sequence[str]) -> list[bytes]:
    return [item.encode("utf-8") + b"\0" for item in items]


class WasiState:
    """One plugin's WASI world: fd table, argv and environment blobs."""

    def __init__(self, config: WasiConfig) -> None:
        config.validate()  # again: a WasiConfig is mutable
        self.config = config
        #: ``[gates.clocks] resolution`` of the plugin's policy (0: the host's clocks as they
        #: are); the runtime sets it, the clock gates round down to it.
        self.clock_resolution_ns = 0
        self.args = _encoded(config.args)
        self.env = _encoded([f"{k}={v}" for k, v in config.env.items()])
        self.table = FdTable(fd_table_size(config))
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
    return FdEntry(T.FILETYPE_DIRECTORY, T.RIGHTS_DIRECTORY, T.SHOWN_PREOPEN_BASE,
                   T.SHOWN_PREOPEN_INHERITING,
                   host_fd=host_fd, preopen=guest, readonly=pre.readonly)


#: What every WASI gate receives: a gate call whose ``state`` is the plugin's WasiState.
WasiCall = GateCall[WasiState]
