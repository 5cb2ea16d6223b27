/*
 * callgate.h — the guest side of callgate's plugin ABI, for C guest authors.
 *
 * A callgate plugin is a wasm module. The host (Python) talks to it in two ways:
 *
 *  1. Integer functions: any export whose parameters and results are i32/i64,
 *     e.g. `int64_t add(int64_t a, int64_t b)`. Nothing special is needed.
 *
 *  2. Bytes functions: bytes in, bytes out. The guest exports
 *       - `memory` (clang does this by default), and
 *       - `cg_alloc(size) -> ptr`, which the host calls to get room for the
 *         input (0 means "cannot allocate");
 *     and each bytes function has the shape
 *         uint64_t NAME(uint8_t *in_ptr, uint32_t in_len);
 *     returning `(out_ptr << 32) | out_len` (both u32; see cg_pack). The host
 *     copies the input into the cg_alloc'd buffer, calls NAME, then reads
 *     [out_ptr, out_ptr + out_len) from memory — bounds-checked, and refused if
 *     it exceeds the plugin's output cap.
 *
 * Ownership: the input buffer belongs to the guest once the call starts
 * (hosted guests `free()` it when done). The output buffer must stay valid
 * until the function returns to the host; cg_return() below keeps it alive
 * until the next cg_return().
 *
 * Errors: a bytes function reports an application-level failure in its output
 * (its own format), or traps (`__builtin_trap()`), which the host raises as a
 * typed error.
 *
 * App-defined gates: the host application registers functions under the
 * import module "callgate"; declare them with CG_GATE:
 *
 *     CG_GATE("kv_get")
 *     int32_t kv_get(const char *key, uint32_t key_len, char *val, uint32_t cap);
 *
 * Every call to such an import passes the host's policy filter first. A gate
 * with an integer result that the policy denies with ERRNO(n) returns -n, in
 * WASI numbering — the same numbers as wasi-libc's <errno.h> (EPERM is 63,
 * ENOENT 44), so `if (r == -EPERM)` works. Well-behaved gates use the same
 * convention for their own failures: a negative result is -errno.
 *
 * Use: in exactly one .c file, `#define CALLGATE_IMPLEMENTATION` before
 * including this header; that file then defines and exports cg_alloc.
 * Modules built with -ffreestanding (no libc, the build's "freestanding"
 * mode) get a one-buffer allocator instead of malloc: each cg_alloc returns
 * the same region, grown as needed, so only the latest buffer is live.
 */
#ifndef CALLGATE_H
#define CALLGATE_H

#include <stddef.h>
#include <stdint.h>

/* Export a function under a fixed wasm name. */
#define CG_EXPORT(name) __attribute__((export_name(name)))

/* Import an app-defined gate from the host ("callgate" module). */
#define CG_GATE(name) __attribute__((import_module("callgate"), import_name(name)))

/* The packed result of a bytes function: (ptr << 32) | len. */
typedef uint64_t cg_bytes;

static inline cg_bytes cg_pack(const void *ptr, size_t len) {
    return ((uint64_t)(uintptr_t)ptr << 32) | (uint32_t)len;
}

/* A negative gate result is -errno (WASI numbering); these make that readable. */
static inline int cg_failed(int32_t result) { return result < 0; }
static inline int cg_errno(int32_t result) { return result < 0 ? -result : 0; }

/* Host-callable allocator for input buffers (defined by CALLGATE_IMPLEMENTATION). */
CG_EXPORT("cg_alloc") void *cg_alloc(uint32_t size);

#if __STDC_HOSTED__
/*
 * Copy `len` bytes into a guest-owned output buffer and pack it for return.
 * The buffer lives until the next cg_return(), long enough for the host to
 * read it. Traps if memory is exhausted.
 */
cg_bytes cg_return(const void *data, size_t len);
#endif

#ifdef CALLGATE_IMPLEMENTATION
#if __STDC_HOSTED__
#include <stdlib.h>
#include <string.h>

void *cg_alloc(uint32_t size) {
    /* malloc(0) may return NULL, which the host would read as failure. */
    return malloc(size ? size : 1);
}

static void *cg_last_output;

cg_bytes cg_return(const void *data, size_t len) {
    free(cg_last_output);
    cg_last_output = malloc(len ? len : 1);
    if (cg_last_output == NULL)
        __builtin_trap();
    memcpy(cg_last_output, data, len);
    return cg_pack(cg_last_output, len);
}
#else
/* The linker places the heap after static data; __heap_base marks its start. */
extern unsigned char __heap_base;

void *cg_alloc(uint32_t size) {
    uintptr_t start = (uintptr_t)&__heap_base;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    uint64_t need = (uint64_t)start + size;
    if (need > have) {
        uint64_t pages = (need - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, (uintptr_t)pages) == (uintptr_t)-1)
            return 0;
    }
    return (void *)start;
}
#endif /* __STDC_HOSTED__ */
#endif /* CALLGATE_IMPLEMENTATION */

#endif /* CALLGATE_H */
