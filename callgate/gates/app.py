"""App-defined gates: host functions an application offers its plugins, under the same filter.

Register them on an :class:`AppGates` registry with the :meth:`AppGates.gate`
decorator and pass the registry to the plugin::

    gates = AppGates()

    @gates.gate(params=("i32", "i32"), results=("i32",), number=0x1000)
    def log_line(call, ptr, length):
        print(call.mem.read_str(ptr, length))   # bounds-checked
        return 0

Guests import them from the ``callgate`` module (``CG_GATE("log_line")`` in C).

* Numbers come from the reserved range ``0x1000..0x1fff``
  (:data:`~callgate.arch.gate_numbers.APP_GATE_FIRST` …). Pass ``number=`` to pin one
  (raw BPF filters match numbers, so pinned numbers keep them valid); otherwise
  the next free number in registration order is taken.
* Arguments arrive as unsigned ints, exactly what the filter compared; use
  :meth:`~callgate.gates.memory.GuestMemory.read`, ``read_str``, ``write``,
  ``u32`` … on ``call.mem`` for pointers: every access is bounds-checked
  (``call.mem`` raises :class:`~callgate.gates.memory.GuestMemoryError` for a
  module that exports no memory; ``call.memory`` is None then).
* Error convention: a policy ``ERRNO(n)`` verdict makes a gate whose first
  result is an integer return ``-n`` (WASI numbering, as in ``callgate.h``);
  other results are 0. A gate with no integer result cannot carry an errno, so
  the call is aborted with :class:`~callgate.gates.errors.GateDenied`.
* ``call.state`` is a fresh dict per plugin instance (or what ``state=`` builds),
  so gates can keep per-plugin data without globals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from callgate.arch.gate_numbers import APP_GATE_FIRST, APP_GATE_LAST, WASI_NUMBERS
from callgate.errors import CallgateError
from callgate.gates.errors import GateDenied
from callgate.gates.host import GateHost
from callgate.gates.spec import GateFunc, GateSpec, ValType

APP_MODULE = "callgate"
VALTYPES = ("i32", "i64", "f32", "f64")
# The decorated function, returned as it is (the decorator only registers it).
AppGateFunc = TypeVar("AppGateFunc", bound=GateFunc)


class AppGateError(CallgateError, ValueError):
    """An app gate registration that cannot work (bad number, name, or signature)."""


def _errno_results(name: str, number: int, results: tuple[ValType, ...]
                   ) -> Callable[[int], tuple[int, ...]]:
    if not results or results[0] not in ("i32", "i64"):
        def abort(n: int) -> tuple[int, ...]:
            raise GateDenied(name, number, n)
        return abort
    rest = (0,) * (len(results) - 1)

    def negative(n: int) -> tuple[int, ...]:
        return (-n, *rest)
    return negative


class AppGates:
    """A registry of app-defined gates; also the gate provider for module ``callgate``."""

    module = APP_MODULE

    def __init__(self, state: Callable[[GateHost], object] | None = None) -> None:
        self._specs: dict[str, GateSpec] = {}
        self._state = state

    def gate(
        self,
        name: str | None = None,
        *,
        params: Sequence[ValType] = (),
        results: Sequence[ValType] = (),
        number: int | None = None,
        uses_memory: bool = True,
        doc: str | None = None,
    ) -> Callable[[AppGateFunc], AppGateFunc]:
        """Register the decorated ``func(call, *args)`` as gate ``name`` (default: its name).

        ``uses_memory=False`` promises the gate never touches ``call.memory`` (it is
        None then), which saves building the memory view on every call.
        """
        def register(func: AppGateFunc) -> AppGateFunc:
            self.add(name or func.__name__, func, params=params, results=results,
                     number=number, uses_memory=uses_memory, doc=doc or func.__doc__ or "")
            return func
        return register

    def add(self, name: str, func: GateFunc, *, params: Sequence[ValType] = (),
            results: Sequence[ValType] = (), number: int | None = None,
            uses_memory: bool = True, doc: str = "") -> GateSpec:
        """Register ``func`` as gate ``name`` (the decorator's non-decorator form)."""
        if not name.isidentifier():
            raise AppGateError(f"app gate name {name!r} must be an identifier")
        if name in self._specs:
            raise AppGateError(f"app gate {name!r} is already registered")
        if name in WASI_NUMBERS:
            raise AppGateError(f"app gate {name!r} would shadow the WASI gate of that name; "
                               "policies name gates without their module")
        for kind in (*params, *results):
            if kind not in VALTYPES:
                raise AppGateError(f"app gate {name!r}: unknown wasm type {kind!r}; "
                                   f"use one of {', '.join(VALTYPES)}")
        if number is None:
            number = self._next_free()
        taken = {s.number: s.name for s in self._specs.values()}
        if not APP_GATE_FIRST <= number <= APP_GATE_LAST:
            raise AppGateError(f"app gate {name!r}: number {number:#x} is outside the reserved "
                               f"range {APP_GATE_FIRST:#x}..{APP_GATE_LAST:#x}")
        if number in taken:
            raise AppGateError(f"app gate {name!r}: number {number:#x} is taken by "
                               f"{taken[number]!r}")
        spec = GateSpec(
            module=APP_MODULE, name=name, number=number, params=tuple(params),
            results=tuple(results), func=func,
            errno_results=_errno_results(name, number, tuple(results)),
            doc=doc.strip().splitlines()[0] if doc.strip() else "", uses_memory=uses_memory,
        )
        self._specs[name] = spec
        return spec

    def _next_free(self) -> int:
        used = {s.number for s in self._specs.values()}
        for number in range(APP_GATE_FIRST, APP_GATE_LAST + 1):
            if number not in used:
                return number
        raise AppGateError("every app gate number is taken")

    def specs(self) -> Sequence[GateSpec]:
        return tuple(self._specs.values())

    def instance_state(self, plugin: GateHost) -> object:
        return self._state(plugin) if self._state is not None else {}

    def __len__(self) -> int:
        return len(self._specs)
