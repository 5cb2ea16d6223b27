"""Shared pieces of the runtime tests: guest paths, inline WAT, policies, recording gates."""

from __future__ import annotations

from pathlib import Path

import wasmtime

from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn
from callgate.gates.app import AppGates

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "wasm"


def wat(text: str) -> bytes:
    return wasmtime.wat2wasm(text)


def guest(name: str) -> Path:
    return GUESTS / f"{name}.wasm"


def returns(value: int) -> list[Insn]:
    """A raw gate filter that answers ``value`` for every call."""
    return [Insn(op.BPF_RET | op.BPF_K, 0, 0, value)]


def gate_policy(default: str, *rules: str, app_gates: tuple[str, ...] = ()) -> str:
    """TOML text of a policy with only a [gates] section; rules are inline tables' bodies."""
    lines = ["[gates]", f'default = "{default}"']
    if app_gates:
        lines.append("app_gates = [" + ", ".join(f'"{g}"' for g in app_gates) + "]")
    for rule in rules:
        lines += ["[[gates.rules]]", rule]
    return "\n".join(lines) + "\n"


class Recorder:
    """Records every gate implementation call as (gate name, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def clear(self) -> None:
        self.calls.clear()


def probe_gates(recorder: Recorder, offset: int = 1000) -> AppGates:
    """``probe1(i64)->i64`` returning arg + offset and ``probe(i64 x7)->i64`` returning a6."""
    gates = AppGates()

    @gates.gate(params=("i64",), results=("i64",), number=0x1001, uses_memory=False)
    def probe1(call, a0):
        recorder.calls.append(("probe1", (a0,)))
        return a0 + offset

    @gates.gate(params=("i64",) * 7, results=("i64",), number=0x1000, uses_memory=False)
    def probe(call, *args):
        recorder.calls.append(("probe", args))
        return args[6]

    return gates
