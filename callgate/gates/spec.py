"""What a gate is: the contract between the runtime's dispatcher and gate implementations.

A gate implementation is a plain Python function ``func(call, *args)``. ``args``
are the wasm arguments as *unsigned* integers (an i32 ``-1`` arrives as
``0xffffffff``), the same zero-extended values the filter saw in
``seccomp_data.args``. It returns the wasm results (an int, a tuple, or None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from callgate.errors import CallgateError
from callgate.gates.host import GateHost
from callgate.gates.memory import GuestMemory, GuestMemoryError

ValType = Literal["i32", "i64", "f32", "f64"]
# What a gate returns: its one result, a tuple of several, or None for none.
GateResult = int | float | tuple[int | float, ...] | None
# A gate implementation: ``func(call, *args) -> GateResult`` (args vary by gate).
GateFunc = Callable[..., GateResult]
StateT = TypeVar("StateT")


@dataclass(frozen=True, slots=True)
class GateSpec:
    """One importable host function and everything the runtime must know to mediate it.

    ``errno_results`` turns the data of an ``ERRNO(n)`` verdict into the gate's
    results, in the gate's own error convention (WASI returns ``n`` as its errno
    result). ``syscalls`` lists the host syscalls the implementation may make, so
    the kernel layer can derive the host allowlist from the gates a policy allows.
    ``uses_memory`` False says the implementation never touches guest memory, so
    the dispatcher can skip building ``GateCall.memory`` (None then) on its hot path.
    """

    module: str
    name: str
    number: int
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]
    func: GateFunc
    errno_results: Callable[[int], tuple[int, ...]]
    syscalls: frozenset[str] = field(default_factory=frozenset)
    doc: str = ""
    uses_memory: bool = True


class GateCall(Generic[StateT]):
    """Per-call context handed to a gate implementation.

    ``memory`` is the caller's linear memory (None for a module without one);
    ``state`` is the per-instance object of the gate's provider (for WASI, its fd
    table: ``GateCall[WasiState]``); ``plugin`` is the plugin making the call, seen
    through the :class:`~callgate.gates.host.GateHost` contract.
    """

    __slots__ = ("memory", "plugin", "spec", "state")

    def __init__(self, spec: GateSpec, memory: GuestMemory | None, state: StateT,
                 plugin: GateHost) -> None:
        self.spec = spec
        self.memory = memory
        self.state = state
        self.plugin = plugin

    @property
    def mem(self) -> GuestMemory:
        """``memory`` for a gate that cannot work without it.

        Raises :class:`~callgate.gates.memory.GuestMemoryError` (EFAULT for a WASI
        gate) when the calling module exports no ``memory``.
        """
        memory = self.memory
        if memory is None:
            raise GuestMemoryError(f"gate {self.spec.name} needs the guest's memory, and "
                                   "the module exports none (export it as 'memory')")
        return memory


class GuestExit(CallgateError):
    """Raised by a gate (WASI ``proc_exit``) to end the guest with an exit code.

    The runtime turns it into a wasm trap that unwinds the guest, then re-raises it
    to the caller; ``callgate run`` exits with ``code``.
    """

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with code {code}")
        self.code = code
