// callgate-build: freestanding
/*
 * upper — a freestanding C plugin: no libc, no imports, just the bytes ABI.
 *
 *   upper(in_ptr, in_len) -> (out_ptr << 32) | out_len
 *
 * Returns the input with ASCII letters a-z turned into A-Z; every other byte,
 * UTF-8 included, passes through unchanged.
 *
 * Built in the "freestanding" mode (-ffreestanding -nostdlib): there is no
 * malloc, so callgate.h's cg_alloc hands out one buffer at the heap's start,
 * growing memory to fit, and the function works on that buffer in place.
 * The whole module is a few hundred bytes and can reach nothing but its own
 * memory: the smallest possible attack surface.
 */
#define CALLGATE_IMPLEMENTATION
#include <callgate.h>

CG_EXPORT("upper")
cg_bytes upper(unsigned char *data, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) {
        if (data[i] >= 'a' && data[i] <= 'z')
            data[i] = (unsigned char)(data[i] - 'a' + 'A');
    }
    return cg_pack(data, len); /* the output is the input buffer, changed in place */
}
