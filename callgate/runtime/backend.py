"""Every use of wasmtime-py's internals, in one module: the unchecked C API through cffi.

wasmtime-py marshals every host call and every export call through Python
objects (6.5–14 µs each). Its shared library also exports the *unchecked* API,
which passes arguments as a flat array of 16-byte ``wasmtime_val_raw_t`` slots;
a host function entered through a raw callback (ctypes, see :data:`CALLBACK`) and
an export called through ``wasmtime_func_call_unchecked`` (cffi) each cost well
under a microsecond of overhead. We load the very library wasmtime-py already
loaded (found through its own loader, so versions always match) and exchange
objects with wasmtime-py as integer addresses.

Opaque value structs (``wasmtime_func_t``, ``wasmtime_memory_t``,
``wasmtime_extern_t``) are declared as byte blobs of the size and alignment
wasmtime-py's own ctypes bindings give them, so this module never guesses a layout.

Nothing else in callgate touches ``wasmtime._bindings``, ``wasmtime._ffi`` or the
private attributes of wasmtime-py objects (``_context()``, ``_func``, ``_memory``,
``Func._from_raw``); a wasmtime-py upgrade that moves them breaks this file only.
Failures are classified here too: traps by wasmtime's structured trap code, and
load failures, for which the C API gives no code, by the one message parser below.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cffi
import wasmtime
from wasmtime import _bindings as wb, _ffi as wffi


def _blob(name: str, ctype: type[ctypes.Structure]) -> str:
    size = ctypes.sizeof(ctype)
    if size % 8:
        raise RuntimeError(f"unexpected size {size} of {name} in this wasmtime")
    return f"typedef struct {{ uint64_t _opaque[{size // 8}]; }} {name};\n"


# Raw slots are read as u64 (the dispatcher masks i32 slots to 32 bits) and written whole.
_CDEF = (
    "typedef struct wasm_trap_t wasm_trap_t;\n"
    "typedef struct wasmtime_error_t wasmtime_error_t;\n"
    "typedef struct wasmtime_context_t wasmtime_context_t;\n"
    "typedef struct wasmtime_caller_t wasmtime_caller_t;\n"
    "typedef struct wasm_functype_t wasm_functype_t;\n"
    + _blob("wasmtime_func_t", wb.wasmtime_func)
    + _blob("wasmtime_memory_t", wb.wasmtime_memory)
    + _blob("wasmtime_extern_t", wb.wasmtime_extern)
    + """
typedef union { int32_t i32; int64_t i64; uint32_t u32; uint64_t u64;
                float f32; double f64; uint8_t v128[16]; } wasmtime_val_raw_t;
typedef struct { size_t size; char *data; } wasm_byte_vec_t;
typedef wasm_trap_t *(*cg_callback_t)(void *, wasmtime_caller_t *, uint64_t *, size_t);

void wasmtime_func_new_unchecked(wasmtime_context_t *, const wasm_functype_t *, cg_callback_t,
                                 void *, void (*)(void *), wasmtime_func_t *);
wasmtime_error_t *wasmtime_func_call_unchecked(wasmtime_context_t *, const wasmtime_func_t *,
                                               uint64_t *, size_t, wasm_trap_t **);
wasm_trap_t *wasmtime_trap_new(const char *, size_t);
bool wasmtime_trap_code(const wasm_trap_t *, uint8_t *);
void wasm_trap_message(const wasm_trap_t *, wasm_byte_vec_t *);
void wasm_trap_delete(wasm_trap_t *);
void wasmtime_error_message(const wasmtime_error_t *, wasm_byte_vec_t *);
void wasmtime_error_delete(wasmtime_error_t *);
void wasm_byte_vec_delete(wasm_byte_vec_t *);
bool wasmtime_caller_export_get(uintptr_t, const char *, size_t, wasmtime_extern_t *);
uint8_t *wasmtime_memory_data(const wasmtime_context_t *, const wasmtime_memory_t *);
size_t wasmtime_memory_data_size(const wasmtime_context_t *, const wasmtime_memory_t *);
wasmtime_error_t *wasmtime_context_set_fuel(wasmtime_context_t *, uint64_t);
void wasmtime_context_set_epoch_deadline(wasmtime_context_t *, uint64_t);
typedef struct wasm_engine_t wasm_engine_t;
wasm_engine_t *wasmtime_engine_clone(wasm_engine_t *);
void wasmtime_engine_increment_epoch(wasm_engine_t *);
void wasm_engine_delete(wasm_engine_t *);
"""
)

ffi = cffi.FFI()
ffi.cdef(_CDEF)
lib = ffi.dlopen(str(wffi.filename))

NULL = ffi.NULL
# The raw host-function callback, as ctypes builds it: ctypes callbacks enter Python
# faster than cffi's (measured: ~0.3 vs ~0.45 µs empty, 0.67 vs 0.91 µs reading 7
# args). The caller arrives as an int (declared uintptr_t above, same ABI as a pointer),
# the slots as a u64 pointer; returning None is NULL (no trap), an int a trap pointer.
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                            ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t)
EXTERN_MEMORY = wffi.WASMTIME_EXTERN_MEMORY.value
EXTERN_MEMORY_OFFSET = wb.wasmtime_extern.of.offset
SLOT_BYTES = ctypes.sizeof(wb.wasmtime_val_raw)
# wasmtime_trap_code_t values, from wasmtime-py's generated enum.
TRAP_STACK_OVERFLOW = wb.wasmtime_trap_code_enum.WASMTIME_TRAP_CODE_STACK_OVERFLOW.value
TRAP_INTERRUPT = wb.wasmtime_trap_code_enum.WASMTIME_TRAP_CODE_INTERRUPT.value
TRAP_OUT_OF_FUEL = wb.wasmtime_trap_code_enum.WASMTIME_TRAP_CODE_OUT_OF_FUEL.value
TRAP_NAMES = {m.value: name.removeprefix("WASMTIME_TRAP_CODE_").lower()
              for name, m in wb.wasmtime_trap_code_enum.__members__.items()}


def address(ctypes_obj: object) -> int:
    """The address behind a wasmtime-py ctypes pointer or structure, as an int."""
    if isinstance(ctypes_obj, ctypes._Pointer):
        return ctypes.cast(ctypes_obj, ctypes.c_void_p).value or 0
    return ctypes.addressof(ctypes_obj)  # type: ignore[arg-type]


def take_message(vec_owner_fn: object, obj: object) -> str:
    """Read and free the message of a trap or error (``wasm_trap_message`` / ``…error_message``)."""
    vec = ffi.new("wasm_byte_vec_t *")
    vec_owner_fn(obj, vec)  # type: ignore[operator]
    try:
        text: bytes = ffi.unpack(vec.data, vec.size)
        return text.decode("utf-8", "replace").rstrip("\0")
    finally:
        lib.wasm_byte_vec_delete(vec)


def trap_code(trap: object) -> int | None:
    code = ffi.new("uint8_t *")
    return code[0] if lib.wasmtime_trap_code(trap, code) else None


# -- raw handles of wasmtime-py objects ---------------------------------------------------

# A cffi pointer into wasmtime's own structures; opaque to everything but this module.
Raw = Any


def store_context(store: wasmtime.Store) -> Raw:
    """The ``wasmtime_context_t *`` of ``store`` (valid while the store lives)."""
    return ffi.cast("wasmtime_context_t *", address(store._context()))


def _copy_blob(ctype: str, source: object) -> Raw:
    blob = ffi.new(f"{ctype} *")
    ffi.memmove(blob, ffi.cast("char *", address(source)), ffi.sizeof(ctype))
    return blob


def raw_func(func: wasmtime.Func) -> Raw:
    """A copy of ``func``'s ``wasmtime_func_t``, for ``wasmtime_func_call_unchecked``."""
    return _copy_blob("wasmtime_func_t", func._func)


def raw_memory(memory: wasmtime.Memory) -> Raw:
    """A copy of ``memory``'s ``wasmtime_memory_t``, for :func:`memory_window`."""
    return _copy_blob("wasmtime_memory_t", memory._memory)


def caller_memory(caller: int) -> Raw | None:
    """The calling instance's export ``memory``, if it exports a memory by that name."""
    ext = ffi.new("wasmtime_extern_t *")
    if not lib.wasmtime_caller_export_get(caller, b"memory", 6, ext):
        return None
    base = ffi.cast("char *", ext)
    if ffi.cast("uint8_t *", base)[0] != EXTERN_MEMORY:
        return None
    mem = ffi.new("wasmtime_memory_t *")
    ffi.memmove(mem, base + EXTERN_MEMORY_OFFSET, ffi.sizeof("wasmtime_memory_t"))
    return mem


memory_size = lib.wasmtime_memory_data_size  # (ctx, memory) -> bytes, as it is right now


def memory_window(ctx: Raw, memory: Raw) -> tuple[int, int]:
    """``(base address, size in bytes)`` of a linear memory, as it is right now."""
    return (int(ffi.cast("uintptr_t", lib.wasmtime_memory_data(ctx, memory))),
            lib.wasmtime_memory_data_size(ctx, memory))


def host_func(ctx: Raw, functype: wasmtime.FuncType, callback: Any) -> wasmtime.Func:
    """A wasmtime-py ``Func`` whose calls enter ``callback`` (a :data:`CALLBACK`) raw."""
    return host_func_at(ctx, functype, ctypes.cast(callback, ctypes.c_void_p).value or 0)


def host_func_at(ctx: Raw, functype: wasmtime.FuncType, callback: int, env: int = 0,
                 finalizer: int = 0) -> wasmtime.Func:
    """A ``Func`` whose calls enter the raw callback at address ``callback`` with ``env``;
    wasmtime calls ``finalizer(env)`` (if not 0) when the store drops the function."""
    raw = ffi.new("wasmtime_func_t *")
    lib.wasmtime_func_new_unchecked(
        ctx, ffi.cast("wasm_functype_t *", address(functype.ptr())),
        ffi.cast("cg_callback_t", callback), ffi.cast("void *", env),
        ffi.cast("void (*)(void *)", finalizer), raw)
    return wasmtime.Func._from_raw(wb.wasmtime_func_t.from_buffer_copy(ffi.buffer(raw)))


def native_api() -> tuple[int, int, int, int]:
    """What the native gate core calls in wasmtime, as addresses: ``(wasmtime_trap_new,
    wasmtime_memory_data, wasmtime_memory_data_size, wasmtime_func_call_unchecked)``."""
    return (_fn_address(lib.wasmtime_trap_new), _fn_address(lib.wasmtime_memory_data),
            _fn_address(lib.wasmtime_memory_data_size),
            _fn_address(lib.wasmtime_func_call_unchecked))


def _fn_address(fn: Any) -> int:
    return int(ffi.cast("uintptr_t", fn))


def context_address(ctx: Raw) -> int:
    """A store context (:func:`store_context`) as an address."""
    return int(ffi.cast("uintptr_t", ctx))


def memory_blob(memory: Raw) -> bytes:
    """The bytes of a ``wasmtime_memory_t`` (:func:`raw_memory`), for the native core."""
    return bytes(ffi.buffer(memory))


def new_error_out() -> Raw:
    """A ``wasmtime_error_t **`` for the native core's calls to report an error in."""
    return ffi.new("wasmtime_error_t **")


# -- budgets ------------------------------------------------------------------------------

def set_fuel(ctx: Raw, fuel: int) -> str | None:
    """Give the store ``fuel``; wasmtime's error message if it refuses, else None."""
    err = lib.wasmtime_context_set_fuel(ctx, fuel)
    if not err:
        return None
    message = take_message(lib.wasmtime_error_message, err)
    lib.wasmtime_error_delete(err)
    return message


def set_epoch_deadline(ctx: Raw, ticks: int) -> None:
    """Trap the store's wasm ``ticks`` epochs from now."""
    lib.wasmtime_context_set_epoch_deadline(ctx, ticks)


def epoch_incrementer(engine: wasmtime.Engine) -> tuple[int, int, int]:
    """What a native thread needs to advance ``engine``'s epoch without Python, as
    addresses: ``(wasmtime_engine_increment_epoch, engine reference, wasm_engine_delete)``.

    The reference is a new one (``wasmtime_engine_clone``): it keeps the engine alive
    whatever happens to the wasmtime-py object, and its holder must free it with the
    third address after its last increment. ``increment_epoch`` is thread-safe.
    """
    ref = lib.wasmtime_engine_clone(ffi.cast("wasm_engine_t *", address(engine.ptr())))
    if ref == NULL:
        raise RuntimeError("wasmtime_engine_clone returned NULL")
    return (int(ffi.cast("uintptr_t", lib.wasmtime_engine_increment_epoch)),
            int(ffi.cast("uintptr_t", ref)),
            int(ffi.cast("uintptr_t", lib.wasm_engine_delete)))


# -- calls and traps ----------------------------------------------------------------------

call_unchecked = lib.wasmtime_func_call_unchecked


def new_trap(text: bytes) -> int:
    """A fresh trap for a raw callback to return: it unwinds the guest."""
    return int(ffi.cast("uintptr_t", lib.wasmtime_trap_new(text, len(text))))


def take_failure(err: Raw, trap_out: Raw) -> tuple[int | None, str]:
    """Read and free what a failed unchecked call left: ``(trap code or None, message)``."""
    code = None
    if trap_out[0]:
        raw_trap, trap_out[0] = trap_out[0], NULL
        code = trap_code(raw_trap)
        message = take_message(lib.wasm_trap_message, raw_trap)
        lib.wasm_trap_delete(raw_trap)
    else:
        message = take_message(lib.wasmtime_error_message, err)
    if err:
        lib.wasmtime_error_delete(err)
    return code, message


class LoadFailure:
    """What kind of store limit an instantiation error names, from wasmtime's text.

    wasmtime's C API gives instantiation errors no code, so this is the one place
    that reads their message; the runtime maps the kind to its typed error.
    """

    MEMORY = "memory"
    MEMORIES = "memories"
    TABLE = "table"
    INSTANCES = "instances"
    OTHER = "other"

    @staticmethod
    def kind(message: str) -> str:
        lowered = message.lower()
        limited = "limit" in lowered or "count" in lowered
        if "memory" in lowered and limited:
            if "memory minimum size" in lowered or "memory_size" in lowered:
                return LoadFailure.MEMORY
            return LoadFailure.MEMORIES
        if "table" in lowered and limited:
            return LoadFailure.TABLE
        if "instance" in lowered and limited:
            return LoadFailure.INSTANCES
        return LoadFailure.OTHER


def trap_cause(message: str) -> str:
    """wasmtime's "error while executing at wasm backtrace: … Caused by: …" → the cause."""
    text = message.strip()
    if "Caused by:" not in text:
        return text.splitlines()[0] if text else "wasm trap"
    causes = [line.strip() for line in text.split("Caused by:", 1)[1].splitlines()]
    causes = [c.split(":", 1)[1].strip() if c[:1].isdigit() and ":" in c else c
              for c in causes]
    return "; ".join(c for c in causes if c)


def trap_code_of(exc: wasmtime.Trap) -> int | None:
    code = exc.trap_code
    return code.value if code is not None else None


# -- cancellation: the store's epoch deadline asks Python (Plugin(cancellable=True)) ----------

_EPOCH_CALLBACK = wb._wasmtime_store_epoch_deadline_callback.argtypes[1]
_EPOCH_FINALIZER = wb._wasmtime_store_epoch_deadline_callback.argtypes[3]
UPDATE_DEADLINE_CONTINUE = 0  # wasmtime_update_deadline_kind_t: run on


def epoch_callback(store: wasmtime.Store, decide: Callable[[], str | None]) -> object:
    """Ask ``decide()`` each time ``store``'s epoch deadline passes (on the wasm thread).

    None lets the guest run one more tick; a message ends the call with a wasmtime error
    carrying it (the caller stashes the typed error first). The returned object is the
    callback: keep it alive as long as the store. ``decide`` must not raise; if it does,
    the call ends rather than run on unchecked.
    """
    def on_deadline(context: object, data: object, delta: Any, kind: Any) -> int:
        try:
            message = decide()
        except BaseException as exc:  # a raw callback must never raise
            message = f"callgate: {type(exc).__name__} in the epoch deadline callback"
        if message is None:
            delta[0] = 1
            kind[0] = UPDATE_DEADLINE_CONTINUE
            return 0
        error = wb.wasmtime_error_new(message.encode())
        return ctypes.cast(error, ctypes.c_void_p).value or 0

    callback = _EPOCH_CALLBACK(on_deadline)
    wb.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, None, _EPOCH_FINALIZER())
    return callback


# -- wasmtime's trap handlers --------------------------------------------------------------

# wasmtime turns a wasm trap (ud2, a guard-page fault, a division by zero) into an error
# through handlers for these signals, installed once per process. A library that installs
# its own later (Ray's driver does, in ray.init, and resets them in ray.shutdown) leaves
# the next trap to the default action: the whole process dies.
TRAP_SIGNALS = (4, 7, 8, 11)  # SIGILL, SIGBUS, SIGFPE, SIGSEGV
_SIGACTION_BYTES = 256  # more than glibc's struct sigaction (152 bytes on x86_64)
_libc = ctypes.CDLL(None, use_errno=True)


class TrapHandlers:
    """The process's handlers for :data:`TRAP_SIGNALS`, saved to be put back later::

        with TrapHandlers.kept():
            ray.init()   # wasm traps still reach wasmtime afterwards
    """

    def __init__(self) -> None:
        self._saved: dict[int, ctypes.Array[ctypes.c_char]] = {}
        for sig in TRAP_SIGNALS:
            buf = ctypes.create_string_buffer(_SIGACTION_BYTES)
            if _libc.sigaction(sig, None, buf) != 0:
                raise OSError(ctypes.get_errno(), f"sigaction({sig}) cannot be read")
            self._saved[sig] = buf

    def restore(self) -> None:
        for sig, buf in self._saved.items():
            if _libc.sigaction(sig, buf, None) != 0:
                raise OSError(ctypes.get_errno(), f"sigaction({sig}) cannot be restored")

    @classmethod
    @contextmanager
    def kept(cls) -> Iterator[None]:
        saved = cls()
        try:
            yield
        finally:
            saved.restore()
