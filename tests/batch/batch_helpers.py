"""Shared pieces of the batch tests: guests, small WAT commands, policies, process checks."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "guests" / "wasm"

# WASI commands written for these tests, as WAT (a batch compiles text modules too).
TRAP_WAT = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
# Grows its memory page by page until refused, then traps: what a C memory bomb does when
# malloc finally fails and it aborts.
GROW_THEN_TRAP_WAT = """(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))"""

# Every gate lines.wasm needs but fd_write, which kills.
KILL_WRITE_POLICY = """
[gates]
default = "errno(ENOSYS)"
[[gates.rules]]
names = ["args_get", "args_sizes_get", "environ_get", "environ_sizes_get", "fd_fdstat_get",
         "fd_prestat_get", "fd_prestat_dir_name", "proc_exit"]
action = "allow"
[[gates.rules]]
names = ["fd_write"]
action = "kill_process"
"""
# The gates allow random_get, the kernel layer kills the getrandom behind it.
KERNEL_KILLS_GETRANDOM = """
[gates]
default = "allow"
[kernel]
default = "kill_process"
[[kernel.rules]]
names = ["getrandom"]
action = "kill_process"
"""


def guest(name: str) -> str:
    return str(WASM / f"{name}.wasm")


# Marks the processes this test run starts (servers and their job children inherit the
# environment, and keep it when orphaned), so another suite running on the same machine
# is not counted as ours.
RUN_TAG = f"CALLGATE_TEST_RUN={os.getpid()}-{os.urandom(4).hex()}"
os.environ["CALLGATE_TEST_RUN"] = RUN_TAG.split("=", 1)[1]


def job_processes() -> set[int]:
    """Live processes of this test run running the batch's fork server code (servers, and
    their forked job children, which share the server's command line)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{entry}/environ", "rb") as f:
                ours = RUN_TAG.encode() in f.read().split(b"\0")
        except OSError:
            continue
        if b"callgate.batch.server" in cmdline and state != "Z" and ours:
            found.add(int(entry))
    return found


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []
