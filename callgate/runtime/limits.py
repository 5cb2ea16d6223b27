"""Resource limits of a plugin, and the shared wasmtime engines that enforce them.

Fuel, deadline and output are budgets *per call* (each ``call``/``call_int``
starts with a full budget); memory, tables and instances are caps on the store
for the plugin's whole life. The wasm stack cap is a property of the engine, so
plugins with the same stack cap and fuel setting share one engine (compiling
engines is expensive; sharing is safe across threads).

Deadlines use epoch interruption: a daemon thread per engine advances the epoch
every :data:`TICK_SECONDS` while at least one plugin with a deadline is alive, and
each call sets its store's deadline to ``ceil(timeout / TICK)`` ticks. The GIL
is released while wasm runs, so the ticker thread runs even when the guest spins.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import ClassVar

import wasmtime

TICK_SECONDS = 0.005
# Far enough away to never fire; the epoch is a u64 and advances 200 times a second.
NO_DEADLINE_TICKS = 1 << 48
UNLIMITED_FUEL = (1 << 63) - 1


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
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"Limits.{name} must be a non-negative int or None, "
                                 f"got {value!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"Limits.timeout must be a positive number of seconds, "
                             f"got {self.timeout!r}")
        if not isinstance(self.stack, int) or self.stack < 4096:
            raise ValueError(f"Limits.stack must be at least 4096 bytes, got {self.stack!r}")

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


class _EpochTicker:
    """Advances one engine's epoch while any plugin with a deadline needs it."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._users = 0
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._stop is None:
                self._stop = threading.Event()
                threading.Thread(target=self._run, args=(self._stop,), daemon=True,
                                 name="callgate-epoch").start()

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._stop is not None:
                self._stop.set()
                self._stop = None

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(TICK_SECONDS):
            self._engine.increment_epoch()


@dataclass(frozen=True, slots=True)
class EngineKey:
    """What an engine's compiled code depends on. Fuel and epoch checks are compiled into
    every loop and call, and cost speed (epochs: 20-37% on compute-bound guests), so
    each is on only for plugins that ask for the limit it enforces."""

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
        self.ticker = _EpochTicker(self.engine)

    @classmethod
    def for_limits(cls, limits: Limits) -> SharedEngine:
        key = EngineKey(limits.fuel is not None, limits.timeout is not None, limits.stack)
        with cls._lock:
            shared = cls._cache.get(key)
            if shared is None:
                shared = cls._cache[key] = cls(key)
            return shared
