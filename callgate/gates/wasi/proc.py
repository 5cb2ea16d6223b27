"""Process-level gates: argv, environment, exit, signals, yielding, randomness."""

from __future__ import annotations

import os

from callgate.arch import wasi_errno as E
from callgate.gates.errors import GuestTrap
from callgate.gates.spec import GuestExit
from callgate.gates.wasi.gate import WasiError, wasi_gate
from callgate.gates.wasi.state import WasiCall

_RANDOM_CHUNK = 1 << 16
#: proc_exit statuses wasmtime accepts; from here on it traps.
EXIT_STATUS_LIMIT = 126


def _sizes(call: WasiCall, blobs: list[bytes], count_ptr: int, size_ptr: int) -> None:
    call.mem.check(count_ptr, 4)
    call.mem.check(size_ptr, 4)
    call.mem.set_u32(count_ptr, len(blobs))
    call.mem.set_u32(size_ptr, sum(map(len, blobs)))


def _fill(call: WasiCall, blobs: list[bytes], ptrs: int, buf: int) -> None:
    """Write the pointer array and the NUL-terminated strings, checking both ranges first."""
    mem = call.mem
    mem.check(ptrs, 4 * len(blobs))
    mem.check(buf, sum(map(len, blobs)))
    for i, blob in enumerate(blobs):
        mem.set_u32(ptrs + 4 * i, buf)
        mem.write(buf, blob)
        buf += len(blob)


@wasi_gate("i32 i32")
def args_get(call: WasiCall, argv: int, argv_buf: int) -> None:
    """Copy argv pointers and strings into the guest."""
    _fill(call, call.state.args, argv, argv_buf)


@wasi_gate("i32 i32")
def args_sizes_get(call: WasiCall, argc_ptr: int, size_ptr: int) -> None:
    """Number of arguments and the bytes their strings need."""
    _sizes(call, call.state.args, argc_ptr, size_ptr)


@wasi_gate("i32 i32")
def environ_get(call: WasiCall, environ: int, environ_buf: int) -> None:
    """Copy the environment (``KEY=VALUE`` strings) into the guest."""
    _fill(call, call.state.env, environ, environ_buf)


@wasi_gate("i32 i32")
def environ_sizes_get(call: WasiCall, count_ptr: int, size_ptr: int) -> None:
    """Number of environment variables and the bytes their strings need."""
    _sizes(call, call.state.env, count_ptr, size_ptr)


@wasi_gate("i32", results="", uses_memory=False)
def proc_exit(call: WasiCall, code: int) -> None:
    """End the guest with ``code``: raises GuestExit, which the runtime turns into a trap.

    A status of 126 or more is a trap (``GuestTrap``), as in wasmtime: a shell reads
    126-255 as "cannot run" or a signal, and a status past 255 would wrap (256 to 0,
    a success).
    """
    if code >= EXIT_STATUS_LIMIT:
        raise GuestTrap(f"proc_exit({code}): exit with invalid exit status outside of "
                        f"[0..{EXIT_STATUS_LIMIT})")
    raise GuestExit(code)


@wasi_gate("i32", uses_memory=False)
def proc_raise(call: WasiCall, sig: int) -> None:
    """Signals are not part of the sandbox: ENOSYS, as the spec allows."""
    raise WasiError(E.ENOSYS)


@wasi_gate("", syscalls={"sched_yield"}, uses_memory=False)
def sched_yield(call: WasiCall) -> None:
    """Give up the CPU once."""
    os.sched_yield()


@wasi_gate("i32 i32", syscalls={"getrandom"})
def random_get(call: WasiCall, buf: int, length: int) -> None:
    """Fill ``[buf, buf+len)`` from the host's CSPRNG (``os.urandom``)."""
    call.mem.check(buf, length)
    for start in range(0, length, _RANDOM_CHUNK):
        n = min(_RANDOM_CHUNK, length - start)
        call.mem.write(buf + start, os.urandom(n))
