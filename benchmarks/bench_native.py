"""One WASI call, three ways: wasmtime's native WASI, callgate's native gate core, and
callgate's pure-Python gate path, side by side in one process (issue 14's table).

Usage: ``python benchmarks/bench_native.py [N]`` (or through ``benchmarks/run.py``).

The same module (``benchmarks/guests/wasi_calls.wat``) calls one WASI function ``n`` times
from a wasm loop; one sample is one ``call_int`` of that loop, divided by ``n``. Each
callgate plugin runs under :data:`POLICY`, whose rules inspect the arguments of every
gate measured (so each call runs the filter, not the constant-action table), and whose
denied call (``fd_write`` to fd 5000) is answered ERRNO with an audit record that is
delivered into the plugin's sink (rate-limited, as by default; the run checks that
records and summaries account for every denial). The Python path is measured in this
process by binding the plugin without the native core (what ``CALLGATE_PURE_PYTHON=1``
does for a whole process).

Rows report wall time; judge them by their CPU time (the ``cpu_ns`` column): wasmtime's
native WASI hands file I/O to other threads, whose time this process's CPU time counts
too, and the machine may be shared.

Calls: ``clock_time_get`` (monotonic), ``random_get`` 16 B, ``fd_prestat_get``,
``fd_write`` 16 B to ``/dev/null`` (stdout), ``fd_write`` 16 B to a file, ``fd_read``
4 KiB from a file (every 256th read seeks back first), and a denied ``fd_write``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import wasmtime
from common import Row, timed_row, unavailable

GROUP = "WASI call by call: native WASI, callgate's native core, callgate's Python path"
GUEST = Path(__file__).resolve().parent / "guests" / "wasi_calls.wat"
NATIVE_WASI = "wasmtime native WASI"
CORE = "callgate native core"
PYTHON = "callgate Python path"
# Every gate measured is decided by its arguments (the filter runs on each call).
POLICY = """
[gates]
default = "allow"
[[gates.rules]]
names = ["clock_time_get", "clock_res_get"]
action = "errno(EINVAL)"
args = [{ index = 0, op = "gt", value = 3 }]
[[gates.rules]]
names = ["random_get"]
action = "errno(EINVAL)"
args = [{ index = 1, op = "gt", value = 65536 }]
[[gates.rules]]
names = ["fd_prestat_get", "fd_read", "fd_write", "fd_seek"]
action = "errno(EBADF)"
args = [{ index = 0, op = "ge", value = 1024 }]
"""
DENIED_FD = 5000
# (label, export, arg after n or None for the opened file's fd, what the guest's sum of
# errnos must be per call)
CALLS = (
    ("clock_time_get", "clock", ()),
    ("random_get 16 B", "random", ()),
    ("fd_prestat_get", "prestat", ()),
    ("fd_write 16 B to /dev/null", "write", (1,)),
    ("fd_write 16 B to a file", "write", ("out",)),
    ("fd_read 4 KiB from a file", "read", ("in",)),
)
DENIED = "denied call (fd_write, ERRNO, audit record delivered)"


def row_name(call: str, side: str) -> str:
    return f"{call}: {side}"


@contextlib.contextmanager
def stdout_to(path: str) -> Iterator[None]:
    """Point fd 1 at ``path`` for the duration (the guest's stdout is fd 1)."""
    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)


class NativeWasi:
    """The guest on wasmtime-py's own WASI (preopen /work, stdout /dev/null)."""

    def __init__(self, wasm: bytes, work: Path) -> None:
        engine = wasmtime.Engine()
        module = wasmtime.Module(engine, wasm)
        config = wasmtime.WasiConfig()
        config.stdout_file = os.devnull
        config.preopen_dir(str(work), "/work")
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(config)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        instance = linker.instantiate(self.store, module)
        self.exports = instance.exports(self.store)
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory

    def open(self, name: str, oflags: int) -> int:
        self.memory.write(self.store, name.encode(), 8192)
        fd: int = self.exports["open"](self.store, len(name), oflags)
        return fd

    def loop(self, export: str, *args: int) -> Callable[[int], int]:
        func = self.exports[export]
        return lambda n: int(func(self.store, n, *args))


class Gated:
    """The guest on callgate, on the native core or (``python``) its Python path."""

    def __init__(self, wasm: bytes, work: Path, audit: Path, python: bool) -> None:
        from callgate.gates.wasi.provider import Preopen, WasiConfig, WasiProvider
        from callgate.runtime import Limits, Plugin, dispatch
        from callgate.runtime.audit import AuditSink

        self.sink = AuditSink(audit)  # the default rate limit
        config = WasiConfig(preopens=[Preopen(work, "/work")], stdout="inherit")
        saved = dispatch.NATIVE
        dispatch.NATIVE = saved and not python
        try:
            self.plugin = Plugin(wasm, policy=POLICY, providers=[WasiProvider(config)],
                                 limits=Limits(output=None), audit=self.sink)
        finally:
            dispatch.NATIVE = saved
        if (self.plugin._native is None) != python:
            raise RuntimeError(f"wanted the {'Python' if python else 'native'} path")
        for name in ("clock_time_get", "random_get", "fd_prestat_get", "fd_write", "fd_read"):
            constant, _ = self.plugin.plan.for_gate(self.plugin.table.arch.number(name))
            if constant is not None:
                raise RuntimeError("the benchmark policy must make the filter run")

    def open(self, name: str, oflags: int) -> int:
        memory = self.plugin.memory()
        assert memory is not None
        memory.write(8192, name.encode())
        fd = self.plugin.call_int("open", len(name), oflags)
        assert isinstance(fd, int)
        return fd

    def loop(self, export: str, *args: int) -> Callable[[int], int]:
        call = self.plugin.call_int
        return lambda n: int(call(export, n, *args))  # type: ignore[arg-type]

    def close(self) -> None:
        self.plugin.close()
        self.sink.close()


def _checked(loop: Callable[[int], int], expect: int) -> Callable[[int], None]:
    def batch(count: int) -> None:
        got = loop(count)
        if got != expect * count:
            raise RuntimeError(f"the guest's errnos summed to {got}, expected {expect * count}")
    return batch


def _delivered(path: Path) -> int:
    """Denials accounted for in an audit file: records written plus those summarised."""
    total = 0
    for line in path.read_text().splitlines():
        record = json.loads(line)
        total += record.get("suppressed", 0) or 1
    return total


def run(n: int) -> list[Row]:
    calls = max(n, 100)
    repeats = 9 if n >= 10_000 else 3
    try:
        import callgate.runtime  # noqa: F401
        from callgate.native import gate as native_gate
    except ImportError as exc:
        return [unavailable(row_name(c, s), f"callgate cannot be imported ({exc})",
                            group=GROUP) for c, *_ in CALLS for s in (CORE, PYTHON)]
    wasm = wasmtime.wat2wasm(GUEST.read_text())
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="callgate-bench-native-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        (work / "in").write_bytes(os.urandom(1 << 20))
        sides: list[tuple[str, Callable[[], NativeWasi | Gated] | str]] = [
            (NATIVE_WASI, lambda: NativeWasi(wasm, work)),
            (CORE, (lambda: Gated(wasm, work, Path(tmp) / "core.jsonl", False))
             if native_gate.available() else
             "the native core is not built here (or CALLGATE_PURE_PYTHON is set)"),
            (PYTHON, lambda: Gated(wasm, work, Path(tmp) / "python.jsonl", True)),
        ]
        for side, make in sides:
            if isinstance(make, str):
                rows += [unavailable(row_name(c, side), make, group=GROUP,
                                     baseline=row_name(c, NATIVE_WASI)) for c, *_ in CALLS]
                rows.append(unavailable(row_name(DENIED, side), make, group=GROUP))
                continue
            host = make()
            fds = {"out": host.open("out", 9), "in": host.open("in", 0)}  # CREAT|TRUNC
            for label, export, args in CALLS:
                real = [fds[a] if isinstance(a, str) else a for a in args]
                batch = _checked(host.loop(export, *real), 0)
                name = row_name(label, side)
                baseline = None if side == NATIVE_WASI else row_name(label, NATIVE_WASI)
                with stdout_to(os.devnull):
                    rows.append(timed_row(name, batch, inner=calls, repeats=repeats,
                                          group=GROUP, baseline=baseline,
                                          note="per call; judge by CPU time"))
            if isinstance(host, Gated):
                batch = _checked(host.loop("write", DENIED_FD), 8)  # EBADF
                rows.append(timed_row(row_name(DENIED, side), batch, inner=calls,
                                      repeats=repeats, group=GROUP,
                                      note="default audit rate limit; goal <= 100 ns"))
                denied = host.plugin.counters["fd_write"]["errno"]
                host.close()
                delivered = _delivered(Path(tmp) / ("core.jsonl" if side == CORE
                                                    else "python.jsonl"))
                if delivered != denied or not denied:
                    raise RuntimeError(f"{side}: {denied} denials, {delivered} delivered "
                                       "to the audit sink")
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        cpu = f"{row.cpu_ns:8.1f}" if row.cpu_ns is not None else "       -"
        print(f"{row.name:75} wall {row.median_ns or 0:9.1f} ns  cpu {cpu} ns", file=sys.stderr)
