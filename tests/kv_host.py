"""The host side of ``guests/src/kvstore.c``: its two app gates over a dict.

Shared by the in-process tests and the worker tests, which must serve the guest alike.
"""

from __future__ import annotations

from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.gates.app import AppGates

ENOENT = WASI_ERRNO["ENOENT"]  # kvstore reports errors in WASI numbering


def kv_gates(store: dict[bytes, bytes]) -> AppGates:
    gates = AppGates()

    @gates.gate(params=("i32",) * 4, results=("i32",))
    def kv_get(call, key_ptr, key_len, val_ptr, val_cap):
        key = call.memory.read(key_ptr, key_len)
        if key not in store:
            return -ENOENT
        value = store[key]
        call.memory.write(val_ptr, value[:val_cap])
        return len(value)

    @gates.gate(params=("i32",) * 4, results=("i32",))
    def kv_put(call, key_ptr, key_len, val_ptr, val_len):
        store[call.memory.read(key_ptr, key_len)] = call.memory.read(val_ptr, val_len)
        return 0

    return gates
