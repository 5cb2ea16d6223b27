"""WASI workloads: callgate's gated WASI against wasmtime's native WASI, as a ratio.

Usage: ``python benchmarks/bench_wasi.py [N]`` (or through ``benchmarks/run.py``).

The same committed C guests run on both, with the same args, preopened directory and
stdout redirected to a file:

* ``copyfile`` copies a 16 MiB file of random bytes in 64 KiB chunks (256 reads and
  256 writes: few gate calls, big buffers; the goal row);
* the same in 512 B chunks (32768 + 32768 gate calls: the per-call cost dominates);
* ``lines`` prints 100 000 lines (stdio buffers them, so about 200 ``fd_write`` calls).

One sample is one complete run: a fresh store and instance, WASI set up, ``_start``
to exit. The gated side runs under ``GATED_POLICY`` (all allowed, but ``fd_read`` and
``fd_write`` check their fd, so each of them runs the compiled filter). The module is
compiled once, outside the timing, on both sides. The copy is checked (exit code,
stdout, destination bytes) after timing. ``n`` below 10 000 (the smoke test) shrinks
the file and line count so a run takes milliseconds.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from common import Row, in_ms, timed_row, unavailable

GROUP = "WASI workloads (one whole run each)"
# Everything allowed, but the hot gates' fd is checked, so every read and write runs the
# compiled filter (a cache hit would hide the filter's cost).
GATED_POLICY = """
[gates]
default = "allow"
[[gates.rules]]
names = ["fd_read", "fd_write"]
action = "errno(EBADF)"
args = [{ index = 0, op = "ge", value = 1024 }]
"""
WASM = Path(__file__).resolve().parents[1] / "guests" / "wasm"


@dataclass(frozen=True)
class Workload:
    name: str
    guest: str
    args: tuple[str, ...]
    expect_stdout: bytes


# (guest, argv after argv[0], guest dir "/work" preopened) -> exit code; stdout to a file.
Runner = Callable[[Workload, Path, Path], int]


def workloads(size: int, lines: int) -> list[Workload]:
    copied = f"copied {size} bytes\n".encode()
    mib = f"{size / 2**20:g} MiB" if size >= 2**20 else f"{size // 1024} KiB"
    return [
        Workload(f"copy {mib} in 64 KiB chunks", "copyfile",
                 ("/work/src", "/work/dst", "65536"), copied),
        Workload(f"copy {mib} in 512 B chunks", "copyfile",
                 ("/work/src", "/work/dst", "512"), copied),
        Workload(f"print {lines} lines", "lines", (str(lines),),
                 b"".join(b"line %d\n" % i for i in range(1, lines + 1))),
    ]


def native_runner() -> Runner:
    """wasmtime-py's own WASI (native code inside wasmtime)."""
    engine = wasmtime.Engine()
    modules: dict[str, wasmtime.Module] = {}

    def run(work: Workload, tree: Path, stdout: Path) -> int:
        if work.guest not in modules:
            path = WASM / f"{work.guest}.wasm"
            modules[work.guest] = wasmtime.Module.from_file(engine, str(path))
        wasi = wasmtime.WasiConfig()
        wasi.argv = (work.guest, *work.args)
        wasi.stdout_file = str(stdout)
        wasi.preopen_dir(str(tree), "/work")
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        instance = linker.instantiate(store, modules[work.guest])
        try:
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exit_:
            return exit_.code
        return 0

    return run


def gated_runner() -> Runner | str:
    """callgate's gated WASI (every WASI call a gate), or why it cannot run here.

    The guest's stdout is fd 1 of this process, pointed at the same kind of file the
    native side writes, so both sides pay for real ``write`` syscalls.
    """
    try:
        from callgate.gates.spec import GuestExit
        from callgate.gates.wasi.provider import Preopen, WasiConfig, WasiProvider
        from callgate.runtime import Limits, Plugin
    except ImportError as exc:
        return f"callgate's WASI provider cannot be imported ({exc})"
    modules: dict[str, bytes] = {}

    def run(work: Workload, tree: Path, stdout: Path) -> int:
        if work.guest not in modules:
            modules[work.guest] = (WASM / f"{work.guest}.wasm").read_bytes()
        config = WasiConfig(args=(work.guest, *work.args), preopens=[Preopen(tree, "/work")],
                            stdout="inherit", stderr=bytearray())
        # No output budget: the default (16 MiB per call) counts file writes too.
        with _stdout_to(stdout), Plugin(modules[work.guest], policy=GATED_POLICY,
                                        providers=[WasiProvider(config)],
                                        limits=Limits(output=None)) as plugin:
            try:
                plugin.call_int("_start")
            except GuestExit as exit_:
                return exit_.code
        return 0

    return run


@contextmanager
def _stdout_to(path: Path) -> Iterator[None]:
    """Point fd 1 at ``path`` (truncated) for the duration; restore it after."""
    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)


def _check(work: Workload, code: int, tree: Path, stdout: Path, side: str) -> None:
    if code != 0 or stdout.read_bytes() != work.expect_stdout:
        raise AssertionError(f"{side} {work.name}: exit {code}, stdout "
                             f"{stdout.read_bytes()[:80]!r}")
    if work.guest == "copyfile" and (tree / "dst").read_bytes() != (tree / "src").read_bytes():
        raise AssertionError(f"{side} {work.name}: the copy differs from the source")


def run(n: int) -> list[Row]:
    """Both sides of each workload; full-size workloads when ``n`` >= 10 000."""
    full = n >= 10_000
    size, lines = (16 * 2**20, 100_000) if full else (256 * 1024, 1000)
    repeats = 7 if full else 3
    gated = gated_runner()
    runners: dict[str, Runner | str] = {"wasmtime native WASI": native_runner(),
                                        "callgate gated WASI": gated}
    rows = []
    with tempfile.TemporaryDirectory(prefix="callgate-bench-wasi-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        (tree / "src").write_bytes(os.urandom(size))
        stdout = Path(tmp) / "stdout"
        for work in workloads(size, lines):
            native_name = f"{work.name}: wasmtime native WASI"
            for side, runner in runners.items():
                name = f"{work.name}: {side}"
                baseline = None if runner is runners["wasmtime native WASI"] else native_name
                if isinstance(runner, str):
                    rows.append(unavailable(name, runner, group=GROUP, baseline=baseline,
                                            unit="ms"))
                    continue

                codes: list[int] = []

                def batch(count: int, runner: Runner = runner, work: Workload = work,
                          codes: list[int] = codes) -> None:
                    for _ in range(count):
                        codes.append(runner(work, tree, stdout))

                row = timed_row(name, batch, inner=1, repeats=repeats, group=GROUP,
                                baseline=baseline, note=f"guests/wasm/{work.guest}.wasm")
                _check(work, max(codes, key=abs), tree, stdout, side)  # the last run's output
                rows.append(in_ms(row))
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:60} {row.median_ns or 0:10.2f} {row.unit}  {row.note}")
