"""Gates × actions: no import path reaches a gate implementation the filter did not allow.

For every gate in the table (every WASI preview1 gate the provider offers, and
app gates of every signature shape) and every verdict, a module importing just
that gate calls it once. The implementation is replaced by a spy, so the test
sees exactly whether it ran: it must run iff the verdict lets the call through
(ALLOW, LOG, a broker or tracer answering ALLOW). Each verdict is delivered three
ways: as a constant filter (the dispatcher's constant-action table), by a filter
that inspects args (the compiled evaluator), and by that filter run in the reference
interpreter (``Plugin(filter_mode="interpreter")``): every dispatch path.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from rt_helpers import returns, wat

from callgate.bpf import opcodes as op
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
)
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import arg_lo
from callgate.gates.app import AppGates
from callgate.gates.errors import GateDenied, GateViolation, PluginKilled
from callgate.gates.spec import GateSpec
from callgate.gates.table import GateTable
from callgate.runtime import ALLOW, Plugin
from callgate.runtime.loading import default_providers


def _app_gates() -> AppGates:
    """App gates of every signature shape the dispatcher specialises on."""
    gates = AppGates()
    shapes = {
        "m_void": ((), ()),
        "m_i32": (("i32",), ("i32",)),
        "m_i64": (("i64",), ("i64",)),
        "m_mixed": (("i32", "i64", "i32"), ("i64",)),
        "m_seven": (("i64",) * 7, ("i32",)),
        "m_float": (("f32", "f64"), ("f64",)),
        "m_two": (("i32",), ("i32", "i64")),
        "m_noresult": (("i32", "i32"), ()),
    }
    for name, (params, results) in shapes.items():
        gates.add(name, lambda call, *a: None, params=params, results=results,
                  uses_memory=name != "m_i64")
    return gates


class SpyProvider:
    """Serves another provider's gates with every implementation replaced by a spy."""

    def __init__(self, inner: Any, ran: list[str]) -> None:
        self.module = inner.module
        self._inner = inner
        self._specs = [dataclasses.replace(s, func=self._spy(s, ran)) for s in inner.specs()]

    @staticmethod
    def _spy(spec: GateSpec, ran: list[str]):
        def spy(call, *args):
            assert len(args) == len(spec.params)
            ran.append(spec.name)
            zero = {"i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0}
            values = tuple(zero[k] for k in spec.results)
            return values[0] if len(values) == 1 else (values or None)
        return spy

    def specs(self):
        return self._specs

    def instance_state(self, plugin):
        return self._inner.instance_state(plugin)


def _all_providers(ran: list[str]) -> list[SpyProvider]:
    return [SpyProvider(p, ran) for p in [*default_providers(), _app_gates()]]


ZERO = {"i32": "(i32.const 0)", "i64": "(i64.const 0)", "f32": "(f32.const 0)",
        "f64": "(f64.const 0)"}


def _module(spec: GateSpec) -> bytes:
    params = " ".join(spec.params)
    results = " ".join(spec.results)
    sig = (f"(param {params})" if params else "") + (f" (result {results})" if results else "")
    drops = " drop" * len(spec.results)
    return wat(f'(module (import "{spec.module}" "{spec.name}" (func $g {sig}))'
               f' (memory (export "memory") 1)'
               f' (func (export "go") (call $g {" ".join(ZERO[k] for k in spec.params)}){drops}))')


def _arg_inspecting(verdict: int) -> list[Insn]:
    """``verdict`` when args[0] (low word) is 0, else ALLOW: the filter must read args."""
    return [Insn(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, arg_lo(0)),
            Insn(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 1, 0),
            Insn(op.BPF_RET | op.BPF_K, 0, 0, verdict),
            Insn(op.BPF_RET | op.BPF_K, 0, 0, SECCOMP_RET_ALLOW)]


# (label, verdict, broker, tracer, gate runs)
VERDICTS = [
    ("allow", SECCOMP_RET_ALLOW, None, None, True),
    ("log", SECCOMP_RET_LOG, None, None, True),
    ("errno", SECCOMP_RET_ERRNO | 5, None, None, False),
    ("trap", SECCOMP_RET_TRAP, None, None, False),
    ("trap-broker-allow", SECCOMP_RET_TRAP, lambda r: ALLOW, None, True),
    ("user_notif", SECCOMP_RET_USER_NOTIF, None, None, False),
    ("user_notif-broker-allow", SECCOMP_RET_USER_NOTIF, lambda r: ALLOW, None, True),
    ("trace", SECCOMP_RET_TRACE | 1, None, None, False),
    ("trace-tracer", SECCOMP_RET_TRACE | 1, None, lambda r: None, True),
    ("kill_thread", SECCOMP_RET_KILL_THREAD, None, None, False),
    ("kill_process", SECCOMP_RET_KILL_PROCESS, None, None, False),
]


def test_every_gate_every_verdict_every_dispatch_path():
    ran: list[str] = []
    providers = _all_providers(ran)
    table = GateTable(providers)
    assert len(table) >= len(_app_gates())
    checked = 0
    for spec in table:
        module = _module(spec)
        for label, verdict, broker, tracer, runs in VERDICTS:
            paths = [(returns(verdict), "compiled"), (_arg_inspecting(verdict), "compiled"),
                     (_arg_inspecting(verdict), "interpreter")]
            for program, mode in paths:
                ran.clear()
                with Plugin(module, providers=providers, policy=program, broker=broker,
                            tracer=tracer, filter_mode=mode) as p:
                    try:
                        p.call_int("go")
                    except PluginKilled:
                        assert label == "kill_process"
                    except GateViolation:
                        assert label == "kill_thread"
                    except GateDenied:
                        assert not any(k in ("i32", "i64") for k in spec.results[:1])
                    else:
                        assert not label.startswith("kill"), (spec.name, label)
                    assert ran == ([spec.name] if runs else []), (spec.name, label, program, mode)
                    counts = p.counters[spec.name]
                    assert sum(counts.values()) == 1, (spec.name, label, counts)
                checked += 1
    assert checked == len(table) * len(VERDICTS) * 3


@pytest.mark.parametrize("program", [returns(SECCOMP_RET_ERRNO | 5), _arg_inspecting(
    SECCOMP_RET_ERRNO | 5)], ids=["constant", "evaluated"])
def test_errno_reaches_the_guest_in_the_gate_convention(program):
    module = wat('(module (import "callgate" "m_i32" (func $g (param i32) (result i32)))'
                 ' (func (export "go") (result i32) (call $g (i32.const 0))))')
    with Plugin(module, gates=_app_gates(), policy=program) as p:
        assert p.call_int("go") == -5
