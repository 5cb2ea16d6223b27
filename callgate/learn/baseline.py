"""Measure the runtime's steady-state syscalls: the evidence behind runtime-baseline.toml.

``python -m callgate.learn.baseline`` runs :func:`host_loop` under ``strace -f`` and
prints every syscall made between two marker syscalls: the first right where lockdown
would happen (compiled and instantiated), the second after the steady-state rounds; plus
those made while the process exits. The loop runs callgate's own
runtime doing what a locked-down host keeps doing: gated calls under every non-fatal
verdict with audit records, the broker, bytes-ABI calls that grow linear memory, wasm
traps, fuel and deadlines (the epoch ticker thread), Python allocation and gc.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from callgate.errors import CallgateError
from callgate.kernel.binding import raw_syscall
from callgate.kernel.strace import (
    BEGIN_MARKER,
    END_MARKER,
    StraceUnavailable,
    steady_state,
    strace_prefix,
)

if TYPE_CHECKING:
    from callgate.runtime.broker import GateRequest, Verdict

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

# The gate layer of the measured plugin: every verdict that lets a call end normally.
LOOP_POLICY = """
[gates]
default = "allow"
[[gates.rules]]
names = ["probe"]
action = "log"
args = [{ index = 0, op = "eq", value = 3 }]
[[gates.rules]]
names = ["probe"]
action = "errno(EPERM)"
args = [{ index = 0, op = "eq", value = 5 }]
[[gates.rules]]
names = ["probe"]
action = "kill_thread"
args = [{ index = 0, op = "eq", value = 7 }]
[[gates.rules]]
names = ["probe"]
action = "trap"
args = [{ index = 0, op = "eq", value = 9 }]
"""


def _guest(name: str) -> bytes:
    """One of the guests the loop runs, shipped with the package (package data).

    ``baseline_guests/NAME.wasm`` is a link to ``guests/wasm/NAME.wasm`` in the source
    tree, the one built copy; a wheel holds the file itself, so the verb needs no checkout.
    """
    return (resources.files("callgate.learn") / "baseline_guests" / f"{name}.wasm").read_bytes()


def host_loop(rounds: int) -> None:
    """Load plugins, mark the lockdown point, then run ``rounds`` rounds of real work.

    Every plugin is loaded before the first marker, as lockdown demands: loading makes
    callbacks (executable memory) and compiles. The rounds exercise the runtime's
    steady state: bytes-ABI calls, an app gate under every non-fatal verdict (with
    audit records), the broker, fuel and deadlines (the epoch ticker thread), wasm
    traps, and Python allocation and gc.
    """
    from callgate.gates.app import AppGates
    from callgate.runtime import ALLOW, Errno, Limits, Plugin, PluginError

    gates = AppGates()
    gates.add(
        "probe",
        lambda call, *args: args[0] + 1,
        params=("i64",) * 7,
        results=("i64",),
        uses_memory=False,
    )
    limits = Limits(fuel=10**9, timeout=30)
    broker_calls: list[GateRequest] = []

    def broker(request: GateRequest) -> Verdict:
        broker_calls.append(request)
        return ALLOW if len(broker_calls) % 2 else Errno(1)

    probe = Plugin(
        _guest("gatecall"), policy=LOOP_POLICY, gates=gates, limits=limits, broker=broker
    )
    fast = Plugin(_guest("gatecall"), gates=gates, limits=limits)
    words = Plugin(_guest("wordcount"), limits=limits)
    hello = Plugin(_guest("hello"), limits=limits)
    traps = Plugin(_guest("hostile_traps"), limits=limits)
    tables = Plugin(_guest("hostile_tablebomb"), limits=limits)

    def one_round() -> None:
        for arg in (1, 3, 5, 7, 9, 9):
            with contextlib.suppress(PluginError):
                probe.call_int("once", arg, 2, 3, 4, 5, 6, 7)
        fast.call_int("run", 500)
        words.call("wordcount", b"some words " * 20000)  # grows linear memory
        hello.call("echo", b"x" * 1000)
        for name in ("unreachable", "div_zero", "oob_load", "bad_indirect"):
            with contextlib.suppress(PluginError):
                traps.call_int(name)
        tables.call_int("grow_all")  # table.grow up to the cap: a reallocating host buffer
        junk = [bytes(1 << k) for k in range(8, 24)] + [bytes(100) for _ in range(2000)]
        growing = bytearray()
        for _ in range(8):
            growing += bytes(1 << 20)  # realloc of an mmapped block
        del junk, growing
        gc.collect()

    raw_syscall(BEGIN_MARKER)  # the lockdown point
    for _ in range(rounds):
        one_round()
    raw_syscall(END_MARKER)
    broker_calls.clear()


class MeasurementError(CallgateError):
    """The baseline cannot be measured here (no strace, or the loop failed)."""


def measure(rounds: int = 20) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Run the host loop under ``strace -f``; return (steady-state, exit) syscall counts."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace"
        try:
            prefix = strace_prefix(out)
        except StraceUnavailable as exc:
            raise MeasurementError(str(exc)) from None
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "callgate.learn.baseline",
            "--loop",
        ]
        try:
            subprocess.run([*cmd, str(rounds)], check=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise MeasurementError(f"the measurement loop failed: {exc}") from None
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
