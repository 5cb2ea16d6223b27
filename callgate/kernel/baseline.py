"""Measure the runtime's steady-state syscalls: the evidence behind runtime-baseline.toml.

``python -m callgate.kernel.baseline`` runs :func:`host_loop` under ``strace -f`` and
prints every syscall made between two marker syscalls: the first right where lockdown
would happen (compiled and instantiated), the second after the steady-state rounds; plus
those made while the process exits. The loop exercises what a
locked-down host keeps doing: wasm -> host calls, memory.grow, traps, a fresh store
and instance per round, guest memory access, Python allocation and gc, and an epoch
ticker thread.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from callgate.kernel.binding import raw_syscall

# Unassigned syscall numbers strace shows as syscall_0x3e8 / syscall_0x3e9.
BEGIN_MARKER = 1000
END_MARKER = 1001

GUEST_WAT = """
(module
  (import "env" "host" (func $host (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (param $n i32) (result i32)
    (local $acc i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (call $host (local.get $n))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc))
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
  (func (export "oob") (result i32) (i32.load (i32.const 0x7fffffff)))
  (func (export "unreachable") unreachable))
"""


def host_loop(rounds: int) -> None:
    """Warm up, then run ``rounds`` steady-state rounds between the two markers."""
    import wasmtime

    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module(engine, wasmtime.wat2wasm(GUEST_WAT))
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()
    linker.define_func("env", "host", wasmtime.FuncType([i32], [i32]), lambda x: x * 2)
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            engine.increment_epoch()
            time.sleep(0.01)

    def one_round() -> None:
        store = wasmtime.Store(engine)
        store.set_epoch_deadline(1_000_000)
        exports = linker.instantiate(store, module).exports(store)
        exports["run"](store, 2000)
        exports["grow"](store)
        for trapping in ("oob", "unreachable"):
            with contextlib.suppress(wasmtime.Trap):
                exports[trapping](store)
        memory = exports["memory"]
        memory.write(store, b"x" * 100, 0)
        memory.read(store, 0, 100)
        junk = [bytes(1 << k) for k in range(8, 24)] + [bytes(100) for _ in range(2000)]
        del junk
        gc.collect()

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    # The lockdown point: compiled and instantiated, nothing run yet. Measuring from here
    # (not after a warm-up) catches what compile threads still do right after compiling.
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1_000_000)
    first = linker.instantiate(store, module).exports(store)
    raw_syscall(BEGIN_MARKER)
    first["run"](store, 10)
    for _ in range(rounds):
        one_round()
    raw_syscall(END_MARKER)
    stop.set()
    thread.join()


_LINE = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]")


def steady_state(trace: str) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Syscall counts in the steady state and after it (exit), from ``strace -f`` output."""
    during: collections.Counter[str] = collections.Counter()
    after: collections.Counter[str] = collections.Counter()
    phase = None
    for line in trace.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        name = match.group(1)
        if name == f"syscall_{BEGIN_MARKER:#x}":
            phase = during
        elif name == f"syscall_{END_MARKER:#x}":
            phase = after
        elif phase is not None and name != "resumed":
            phase[name] += 1
    return during, after


def measure(rounds: int = 20) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Run the host loop under ``strace -f``; return (steady-state, exit) syscall counts."""
    strace = shutil.which("strace")
    if strace is None:
        raise FileNotFoundError("strace is not installed (apt-get install strace)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace"
        cmd = [
            strace,
            "-f",
            "-qq",
            "-o",
            str(out),
            sys.executable,
            "-m",
            "callgate.kernel.baseline",
            "--loop",
        ]
        subprocess.run([*cmd, str(rounds)], check=True, timeout=300)
        return steady_state(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", type=int, metavar="ROUNDS", help="run the loop (under strace)")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    if args.loop is not None:
        host_loop(args.loop)
        return 0
    print(report(*measure(args.rounds)), end="")
    return 0


def report(during: collections.Counter[str], after: collections.Counter[str]) -> str:
    """The two counts as text, one syscall a line."""
    lines = []
    for title, counts in (("steady state", during), ("exit", after)):
        lines.append(f"# {title}")
        lines += [f"{name:20} {count}" for name, count in sorted(counts.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
