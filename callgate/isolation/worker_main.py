"""The worker side: build the service, lock down with both layers, serve calls from the parent.

Started by :class:`callgate.isolation.worker.Worker` as ``python -m callgate.isolation.worker_main
--sock FD``. The first message is the setup: which service to build (an import path,
``module:function``), its configuration, the fds it is handed (SCM_RIGHTS, by name) and
the kernel program to install. The worker builds the service (compiling and
instantiating everything), closes every fd it was not handed, drops its capabilities,
sets NO_NEW_PRIVS, confines paths with Landlock (what the service holds, e.g. its
preopens, plus the policy's ``[landlock]`` section), installs the program with TSYNC,
and only then answers ``ready``.

From then on it holds nothing the parent did not pass it, and every request the
service cannot answer alone (an app-defined gate, a TRAP for the broker) goes back to
the parent through :class:`ParentLink`, which also serves the parent's guest-memory
reads and writes while it waits.
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any, Protocol

from callgate.errors import CallgateError
from callgate.isolation import wire
from callgate.isolation.errors import encode_error, rebuild_error
from callgate.kernel.binding import SECCOMP_FILTER_FLAG_NEW_LISTENER
from callgate.kernel.landlock import PathRule, Ruleset, ruleset_for
from callgate.kernel.lockdown import drop_capabilities, lockdown
from callgate.policy.model import LandlockSection


class Service(Protocol):
    """What a service factory returns; it may also offer ``keep_fds() -> Iterable[int]``
    and ``landlock_rules() -> Iterable[PathRule]`` (the directories it holds, by fd)."""

    def call(self, method: str, args: list[Any]) -> Any: ...


class Memory(Protocol):
    def read(self, ptr: int, length: int) -> bytes: ...

    def write(self, ptr: int, data: bytes) -> None: ...


class ParentLink:
    """The worker's way back to the parent, usable by the service during a call."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def request(self, op: str, payload: dict[str, Any], memory: Memory | None = None) -> Any:
        """Send ``op`` to the parent and wait for its reply, serving memory access meanwhile."""
        wire.send(self._sock, {"op": op, **payload})
        while True:
            message, fds = wire.recv(self._sock)
            for fd in fds:  # the parent never sends fds here; do not hold them
                os.close(fd)
            kind = message["op"]
            if kind == "reply":
                if "error" in message:
                    error = message["error"]
                    rebuilt = rebuild_error(str(error.get("type")), str(error.get("message")),
                                            error.get("attrs") or {})
                    raise rebuilt or ParentError(f"{error.get('type')}: {error.get('message')}")
                return message.get("value")
            if kind in ("mem_read", "mem_write"):
                wire.send(self._sock, _memory_op(memory, message))
            else:
                raise wire.WireError(f"unexpected {kind!r} while waiting for a reply to {op!r}")


class ParentError(CallgateError):
    """The parent answered a forwarded request with an error."""


def _memory_op(memory: Memory | None, message: dict[str, Any]) -> dict[str, Any]:
    if memory is None:
        return {"op": "mem", "error": "this call has no guest memory"}
    try:
        if message["op"] == "mem_read":
            return {"op": "mem", "value": memory.read(int(message["ptr"]), int(message["len"]))}
        memory.write(int(message["ptr"]), bytes(message["data"]))
        return {"op": "mem", "value": None}
    except Exception as exc:
        return {"op": "mem", "error": f"{type(exc).__name__}: {exc}"}


def _load(path: str) -> Callable[..., Service]:
    module, _, name = path.partition(":")
    factory: Callable[..., Service] = getattr(importlib.import_module(module), name)
    return factory


def serve(sock: socket.socket) -> int:
    # Before the service compiles anything (wasmtime's compile threads would keep them):
    # the worker needs no capability, it holds fds.
    drop_capabilities()
    setup, fds = wire.recv(sock)
    if setup["op"] != "setup":
        raise wire.WireError(f"expected setup, got {setup['op']!r}")
    names = list(setup.get("fd_names", []))
    handed = dict(zip(names, fds, strict=True))
    link = ParentLink(sock)
    try:
        service = _load(setup["service"])(setup.get("config", {}), handed, link)
    except Exception as exc:
        wire.send(sock, {"op": "error", **encode_error(exc)})
        return 1
    # A service may have taken its own copies of what it was handed (and closed the
    # originals); it then says which fds it still needs.
    needed = service.keep_fds() if hasattr(service, "keep_fds") else handed.values()
    keep = {0, 1, 2, sock.fileno(), *needed}
    pid = os.getpid()  # getpid is a syscall the filter need not allow
    flags = int(setup.get("filter_flags", 0))
    if setup.get("supervised"):
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER
    paths = _landlock(setup.get("landlock"), service)
    with warnings.catch_warnings(record=True):  # the parent warns, from the ready report
        report = lockdown(bytes(setup["program"]), keep_fds=keep, flags=flags,
                          landlock=paths, landlock_abi=(setup.get("landlock") or {}).get("abi"))
    listener = () if report.listener is None else (report.listener,)
    ready = {"op": "ready", "pid": pid, "threads": report.threads, "fds": list(report.held_fds),
             "landlock": None if report.landlock is None else report.landlock.as_dict()}
    wire.send(sock, ready, listener)
    for fd in listener:  # the parent answers on it; this process must not hold it
        os.close(fd)
    while True:
        try:
            message, extra = wire.recv(sock)
        except wire.PeerClosed:
            return 0
        for fd in extra:
            os.close(fd)
        if message["op"] == "close":
            return 0
        if message["op"] != "call":
            raise wire.WireError(f"unexpected {message['op']!r}")
        try:
            value = service.call(str(message["method"]), list(message.get("args", [])))
            wire.send(sock, {"op": "result", "value": value})
        except (wire.WireError, wire.PeerClosed):
            raise
        except Exception as exc:
            wire.send(sock, {"op": "error", **encode_error(exc)})


def _landlock(setup: Any, service: Any) -> Ruleset | None:
    """The worker's Landlock ruleset: what the service holds, and the policy's paths."""
    if not isinstance(setup, dict):
        return None
    section = LandlockSection(
        read=tuple(setup.get("read", ())), write=tuple(setup.get("write", ())),
        connect_tcp=tuple(setup.get("connect_tcp", ())),
        bind_tcp=tuple(setup.get("bind_tcp", ())), required=bool(setup.get("required")),
    )
    held: tuple[PathRule, ...] = ()
    if hasattr(service, "landlock_rules"):
        held = tuple(service.landlock_rules())
    return ruleset_for(section, held)


def main(argv: list[str] | None = None) -> None:
    """Serve, then leave with ``os._exit``: after lockdown, interpreter shutdown would
    close fds and restore handlers, syscalls the filter has no reason to allow."""
    parser = argparse.ArgumentParser(description="callgate worker (started by the parent)")
    parser.add_argument("--sock", type=int, required=True)
    args = parser.parse_args(argv)
    status = 1
    try:
        status = serve(socket.socket(fileno=args.sock))
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


if __name__ == "__main__":
    main()
