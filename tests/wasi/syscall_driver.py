"""Run guests under callgate's WASI with a marker syscall around every gate call.

Used by ``test_wasi_syscalls.py`` under ``strace -f``: each gate call is framed by
``faccessat("/callgate-marker/begin/<gate>")`` and ``faccessat("/callgate-marker/end")``,
so the syscalls between two markers are the ones that gate's implementation made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from callgate.gates.spec import GateSpec, GuestExit
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
from callgate.runtime import Plugin

WASM = Path(__file__).resolve().parents[2] / "guests" / "wasm"


class MarkedProvider(WasiProvider):
    def specs(self) -> tuple[GateSpec, ...]:
        return tuple(dataclasses.replace(spec, func=_marked(spec)) for spec in super().specs())


def _marked(spec: GateSpec) -> Any:
    def gate(call: Any, *args: int) -> Any:
        os.access(f"/callgate-marker/begin/{spec.name}", os.F_OK)
        try:
            return spec.func(call, *args)
        finally:
            os.access("/callgate-marker/end", os.F_OK)
    return gate


def main() -> None:
    scratch = Path(tempfile.mkdtemp()) / "s"
    scratch.mkdir()
    ours, theirs = socket.socketpair()
    ours.sendall(b"data for cat")
    ours.shutdown(socket.SHUT_WR)
    runs = [("wasi_probe", ("scratch",), []), ("copyfile", ("scratch/g", "scratch/h", "3"), []),
            ("timerand", (), []), ("cat", (), [theirs])]
    for guest, args, sockets in runs:
        config = WasiConfig(args=(guest, *args), preopens=[Preopen(scratch, "scratch")],
                            stdout=bytearray(), stderr=bytearray(), sockets=sockets)
        if sockets:  # cat reads its stdin: make fd 0 the socket
            config.stdin = "inherit"
            os.dup2(theirs.fileno(), 0)
        plugin = Plugin(WASM / f"{guest}.wasm", providers=[MarkedProvider(config)])
        with plugin, contextlib.suppress(GuestExit):
            plugin.call_int("_start")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
