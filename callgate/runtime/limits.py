"""Resource limits of a plugin, and the shared wasmtime engines that enforce them.

Fuel, deadline and output are budgets *per call* (each ``call``/``call_int``
starts with a full budget); memory, tables and instances are caps on the store
for the plugin's whole life. The wasm stack cap is a property of the engine, so
plugins with the same stack cap and fuel setting share one engine (compiling
engines is expensive; sharing is safe across threads).

Deadlines use epoch interruption: a ticker thread per engine advances the epoch
every :data:`TICK_SECONDS` while at least one plugin with a deadline is alive, and
each call sets its store's deadline to ``ceil(timeout / TICK)`` ticks. The ticker is
:class:`callgate.native.ticker.Ticker`: a native thread that never takes the GIL (so a
deadline holds whatever the host's Python threads do), or, when the native core is not
built or ``CALLGATE_PURE_PYTHON=1``, its Python twin, which needs the GIL at every tick
but catches up on ticks it missed, so a GIL wait delays a deadline by that wait only.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import ClassVar

import wasmtime

from callgate.errors import CallgateError
from callgate.native.ticker import NativeTarget, Ticker
from callgate.runtime import backend

TICK_SECONDS = 0.005
TICK_NS = 5_000_000  # TICK_SECONDS, for the ticker
# Far enough away to never fire; the epoch is a u64 and advances 200 times a second.
NO_DEADLINE_TICKS = 1 << 48
UNLIMITED_FUEL = (1 << 63) - 1

# The bounds Limits checks, each where something below would otherwise break:
# wasmtime takes fuel as a u64 (wasmtime_context_set_fuel) ...
MAX_FUEL = (1 << 64) - 1
# ... and the store caps as i64 (wasmtime_store_limiter; a larger int would wrap, and a
# negative one means "no limit").
MAX_STORE_CAP = (1 << 63) - 1
# wasmtime refuses an engine whose max_wasm_stack exceeds its async_stack_size (2 MiB
# by default; wasmtime-py cannot change it) by *panicking*, which aborts the whole
# process (SIGABRT); tests/runtime/test_bad_input.py pins this bound against wasmtime.
MAX_STACK = 2 * 1024 * 1024
MIN_STACK = 4096
# Gates wait at most remaining_time() with poll(2), whose timeout is an int of
# milliseconds (2**31 - 1 ms is 24.8 days): a longer timeout would overflow there.
MAX_TIMEOUT = 2_000_000.0


class LimitsError(CallgateError, ValueError):
    """A :class:`Limits` field that cannot be enforced: wrong type, or out of range."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one plugin may use. None means "no limit" for that resource.

    * ``fuel``: wasm instructions (roughly) per call;
    * ``timeout``: wall-clock seconds per call (resolution :data:`TICK_SECONDS`);
    * ``memory``: bytes of linear memory; growth past it fails (``memory.grow``
      returns -1) and a module whose minimum exceeds it is refused;
    * ``table_elements``, ``tables``, ``instances``, ``memories``: store caps;
    * ``stack``: bytes of wasm stack (wasmtime's ``max_wasm_stack``);
    * ``output``: bytes a call may return (bytes ABI) plus bytes gates write for it.
    """

    fuel: int | None = None
    timeout: float | None = None
    memory: int | None = 256 * 1024 * 1024
    table_elements: int | None = 1_000_000
    tables: int | None = 16
    instances: int | None = 1
    memories: int | None = 1
    stack: int = 512 * 1024
    output: int | None = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("fuel", "memory", "table_elements", "tables", "instances", "memories",
                     "output"):
            _check_count(name, getattr(self, name), _MAXIMA[name])
        timeout = self.timeout
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise LimitsError(f"Limits.timeout must be a number of seconds (int or float) "
                                  f"or None, got {timeout!r} ({type(timeout).__name__})")
            if not 0 < timeout <= MAX_TIMEOUT:  # also refuses nan
                raise LimitsError(f"Limits.timeout must be more than 0 and at most "
                                  f"{MAX_TIMEOUT:.0f} seconds, got {timeout!r}; use None for "
                                  "no deadline")
        stack = self.stack
        if isinstance(stack, bool) or not isinstance(stack, int):
            raise LimitsError(f"Limits.stack must be an int (bytes), got {stack!r} "
                              f"({type(stack).__name__})")
        if not MIN_STACK <= stack <= MAX_STACK:
            raise LimitsError(f"Limits.stack must be {MIN_STACK} to {MAX_STACK} bytes (wasmtime "
                              f"cannot run a wasm stack over its {MAX_STACK >> 20} MiB async "
                              f"stack), got {stack}")

    def deadline_ticks(self) -> int:
        if self.timeout is None:
            return NO_DEADLINE_TICKS
        return max(1, math.ceil(self.timeout / TICK_SECONDS))

    def store_limits(self) -> dict[str, int]:
        """Keyword arguments for ``wasmtime.Store.set_limits`` (-1: not limited)."""
        def cap(value: int | None) -> int:
            return -1 if value is None else value
        return {"memory_size": cap(self.memory), "table_elements": cap(self.table_elements),
                "instances": cap(self.instances), "tables": cap(self.tables),
                "memories": cap(self.memories)}


# The largest value of each int field (output is only compared, in Python).
_MAXIMA: dict[str, int | None] = {
    "fuel": MAX_FUEL, "memory": MAX_STORE_CAP, "table_elements": MAX_STORE_CAP,
    "tables": MAX_STORE_CAP, "instances": MAX_STORE_CAP, "memories": MAX_STORE_CAP,
    "output": None,
}


def _check_count(name: str, value: object, maximum: int | None) -> None:
    """A non-negative int (not a bool) up to ``maximum``, or None."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitsError(f"Limits.{name} must be a non-negative int or None, got {value!r} "
                          f"({type(value).__name__})")
    if value < 0 or (maximum is not None and value > maximum):
        top = f" up to 2**{maximum.bit_length()} - 1" if maximum is not None else ""
        raise LimitsError(f"Limits.{name} must be a non-negative int{top} or None, "
                          f"got {value!r}")


def _epoch_ticker(engine: wasmtime.Engine) -> Ticker:
    """The ticker that advances ``engine``'s epoch while a plugin with a deadline needs it
    (``acquire``/``release``). The native loop holds its own reference to the engine, so
    it can never tick a freed one, not even at interpreter shutdown."""
    return Ticker(engine.increment_epoch,
                  lambda: NativeTarget(*backend.epoch_incrementer(engine)),
                  period_ns=TICK_NS, name="callgate-epoch")


@dataclass(frozen=True, slots=True)
class EngineKey:
    """What an engine's compiled code depends on. Fuel and epoch checks are compiled into
    every loop and call, and cost speed (benchmarks/bench_compute.py: epochs up to 20%,
    fuel up to 50% of compute-bound code; a Graphviz render, 37% with epochs), so each is
    on only for plugins that ask for the limit it enforces."""

    fuel: bool
    epoch: bool
    stack: int

    @property
    def tag(self) -> str:
        """The configuration as text, for the compile cache's key."""
        return f"fuel={int(self.fuel)};epoch={int(self.epoch)};stack={self.stack}"


class SharedEngine:
    """An engine for one (fuel, deadline, stack cap) setting, with its epoch ticker."""

    _cache: ClassVar[dict[EngineKey, SharedEngine]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: EngineKey) -> None:
        config = wasmtime.Config()
        config.consume_fuel = key.fuel
        config.epoch_interruption = key.epoch
        config.max_wasm_stack = key.stack
        self.key = key
        self.engine = wasmtime.Engine(config)
        self.ticker = _epoch_ticker(self.engine)

    @classmethod
    def for_limits(cls, limits: Limits, cancellable: bool = False) -> SharedEngine:
        """The engine for ``limits``; a cancellable plugin needs epochs even without a
        timeout (:meth:`Plugin.cancel` ends a call at the next epoch check)."""
        key = EngineKey(limits.fuel is not None, limits.timeout is not None or cancellable,
                        limits.stack)
        with cls._lock:
            shared = cls._cache.get(key)
            if shared is None:
                shared = cls._cache[key] = cls(key)
            return shared
