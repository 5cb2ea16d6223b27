"""What a gate is: the contract between the runtime's dispatcher and gate implementations.

A gate implementation is a plain Python function ``func(call, *args)``. ``args``
are the wasm arguments as *unsigned* integers (an i32 ``-1`` arrives as
``0xffffffff``), the same zero-extended values the filter saw in
``seccomp_data.args``. It returns the wasm results (an int, a tuple, or None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from callgate.errors import CallgateError
from callgate.gates.memory import GuestMemory

ValType = Literal["i32", "i64", "f32", "f64"]


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
    func: Callable[..., Any]
    errno_results: Callable[[int], tuple[int, ...]]
    syscalls: frozenset[str] = field(default_factory=frozenset)
    doc: str = ""
    uses_memory: bool = True


class GateCall:
    """Per-call context handed to a gate implementation.

    ``memory`` is the caller's linear memory (None for a module without one);
    ``state`` is the per-instance object of the gate's provider (for WASI, its fd
    table); ``plugin`` is the plugin making the call.
    """

    __slots__ = ("memory", "plugin", "spec", "state")

    def __init__(self, spec: GateSpec, memory: GuestMemory | None, state: Any, plugin: Any) -> None:
        self.spec = spec
        self.memory = memory
        self.state = state
        self.plugin = plugin


class GuestExit(CallgateError):
    """Raised by a gate (WASI ``proc_exit``) to end the guest with an exit code.

    The runtime turns it into a wasm trap that unwinds the guest, then re-raises it
    to the caller; ``callgate run`` exits with ``code``.
    """

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with code {code}")
        self.code = code
