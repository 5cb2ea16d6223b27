"""Which gate arguments are worth pinning to the values a learning run saw.

An argument is worth pinning when it *names* something or *chooses* a behaviour:
an fd, a clock, a seek origin, open or lookup flags, the rights asked for. A few
such values recur in every run, and a call with a new one is exactly the new access a
least-privilege policy should refuse. Pointers and lengths are the opposite: they
change with the guest's memory layout and its input, and pinning them would only make
the policy fail on the next input.

The kinds come from the gate implementations' own parameter names (``fd_seek(call,
fd, offset, whence, ret)``), which follow the witx definitions. App-defined gates are
not classified: callgate cannot know what their arguments mean.
"""

from __future__ import annotations

import inspect

from callgate.arch.gate_numbers import WASI_MODULE
from callgate.bpf.seccomp_data import ARG_COUNT
from callgate.gates.spec import GateSpec

# WASI parameter names (witx) whose values identify a resource or select a behaviour.
IDENTITY_PARAMS = frozenset({
    "fd", "to", "old_fd", "new_fd",                       # file descriptors
    "clock_id", "whence", "advice", "how", "sig",         # enumerations
    "flags", "fst_flags", "dirflags", "oflags", "old_flags", "ri_flags", "si_flags",
    "rights_base",                                         # what path_open asks for
})


def param_names(spec: GateSpec) -> tuple[str, ...]:
    """The implementation's parameter names after ``call``, one per wasm parameter."""
    names = tuple(inspect.signature(spec.func).parameters)[1:]
    return names if len(names) == len(spec.params) else tuple(f"arg{i}" for i in
                                                             range(len(spec.params)))


def pinnable(spec: GateSpec) -> tuple[int, ...]:
    """Indices of the arguments a learned rule may pin to observed values."""
    if spec.module != WASI_MODULE:
        return ()
    names = param_names(spec)[:ARG_COUNT]
    return tuple(i for i, name in enumerate(names) if name in IDENTITY_PARAMS)


def width(spec: GateSpec, index: int) -> int:
    """The check width for argument ``index``: 32 for an i32 (only its low word counts)."""
    return 32 if spec.params[index] == "i32" else 64
