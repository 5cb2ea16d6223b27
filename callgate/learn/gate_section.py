"""From the gate calls a learning run recorded to least-privilege ``[gates]`` rules.

Only gates the run called get a rule; everything else falls to the default (deny).
Within a used gate, an argument is *pinned* - allowed only with the values the run
passed - when it is identity-like (:mod:`.argkinds`: an fd, a clock id, flags) and the
run passed it at most :data:`MAX_VALUES` distinct values. A larger set says the value
depends on the input (or the guest counts through fds), and pinning it would break the
next run; it stays open.

Checks within a rule are ANDed and rules are ORed, so "fd is 1 or 2" is two rules. With
several pinned arguments the rules are the *combinations the run passed* (``path_open``
on fd 3 with these oflags and those rights), not their cross product. When that gives
more than :data:`MAX_RULES` rules, the argument with the most distinct values is
released first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from callgate.errors import CallgateError
from callgate.gates.spec import GateSpec
from callgate.learn.argkinds import param_names, pinnable, width
from callgate.learn.recorder import MAX_DISTINCT, GateUse
from callgate.policy.model import ArgCheck, Op

MAX_VALUES = 4
MAX_RULES = 8

# Imported gates allowed even when the run did not call them, with the reason.
ALLOWED_UNUSED = {
    "proc_exit": "ending the guest reaches nothing, and a denied proc_exit would turn every "
                 "error exit into a trap (wasi-libc executes `unreachable` when it returns)",
}


@dataclass(frozen=True, slots=True)
class GatePlan:
    """One used gate: the arguments pinned and, per allowed combination, its checks and calls.

    ``released`` names pinnable arguments left open, each with the reason.
    """

    spec: GateSpec
    calls: int
    pinned: tuple[int, ...]
    combos: tuple[tuple[tuple[ArgCheck, ...], int], ...]
    released: tuple[tuple[int, str], ...]


def plan_gate(spec: GateSpec, use: GateUse) -> GatePlan:
    """The rules for one gate the run called (see the module docstring)."""
    released: list[tuple[int, str]] = []
    candidates = [i for i in use.pinned if i in pinnable(spec)]
    if use.overflow:
        released += [(i, f"more than {MAX_DISTINCT} distinct combinations") for i in candidates]
        candidates = []
    position = {index: k for k, index in enumerate(use.pinned)}

    def distinct(index: int) -> int:
        return len({values[position[index]] for values in use.values})

    keep = []
    for index in candidates:
        count = distinct(index)
        if count > MAX_VALUES:
            released.append((index, f"{count} distinct values (more than {MAX_VALUES})"))
        else:
            keep.append(index)
    while True:
        combos: dict[tuple[int, ...], int] = {}
        for values, calls in use.values.items():
            key = tuple(values[position[i]] for i in keep)
            combos[key] = combos.get(key, 0) + calls
        if len(combos) <= MAX_RULES:
            break
        loosest = max(keep, key=lambda i: (distinct(i), i))
        keep.remove(loosest)
        released.append((loosest, f"released to keep the rules at most {MAX_RULES}"))
    def checks(key: tuple[int, ...]) -> tuple[ArgCheck, ...]:
        return tuple(ArgCheck(i, Op.EQ, value, width=width(spec, i))
                     for i, value in zip(keep, key, strict=True))

    rules = tuple((checks(key), calls) for key, calls in sorted(combos.items()))
    return GatePlan(spec, use.calls, tuple(keep), rules, tuple(sorted(released)))


def plan_gates(imported: Iterable[GateSpec], uses: dict[str, GateUse]) -> tuple[GatePlan, ...]:
    """A plan per used gate (and per :data:`ALLOWED_UNUSED` one imported), by gate number.

    A gate the run called that is not in ``imported`` is refused: it cannot happen, and
    a rule for it would allow more than the import table does.
    """
    specs = {spec.name: spec for spec in imported}
    strays = sorted(set(uses) - set(specs))
    if strays:
        raise CallgateError(f"the learning run called gates the module does not import: "
                            f"{strays}; this is a bug in callgate learn")
    plans = [plan_gate(specs[name], use) for name, use in uses.items()]
    plans += [GatePlan(specs[name], 0, (), (((), 0),), ()) for name in ALLOWED_UNUSED
              if name in specs and name not in uses]
    return tuple(sorted(plans, key=lambda plan: plan.spec.number))


def describe_arg(spec: GateSpec, index: int) -> str:
    """``fd (arg 0)``: an argument as a rule comment names it."""
    return f"{param_names(spec)[index]} (arg {index})"
