// callgate-build: reactor
/*
 * kvstore — a plugin that reaches the host only through app-defined gates.
 *
 * The host application owns a key-value store and offers it to plugins as
 * two gates in the "callgate" import module:
 *
 *   kv_get(key_ptr, key_len, val_ptr, val_cap) -> i32
 *       Copies up to val_cap bytes of the value into [val_ptr, +val_cap) and
 *       returns the value's FULL length (which may exceed val_cap: call again
 *       with a bigger buffer), or -errno (e.g. -ENOENT for a missing key).
 *   kv_put(key_ptr, key_len, val_ptr, val_len) -> i32
 *       Stores the value; returns 0 or -errno.
 *
 * Each call passes the host's policy filter first; a denied call returns -n
 * for the policy's ERRNO(n), so the plugin sees it like any other failure.
 *
 * Exported bytes functions (see callgate.h for the ABI):
 *   put("key=value") -> "ok"              (splits at the first '=')
 *   get("key")       -> the value bytes
 * On failure both return "error N", N being the positive WASI errno
 * (44 = ENOENT, 63 = EPERM, 28 = EINVAL for input without '=').
 */
#define CALLGATE_IMPLEMENTATION
#include <callgate.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

CG_GATE("kv_get")
int32_t kv_get(const char *key, uint32_t key_len, char *val, uint32_t val_cap);

CG_GATE("kv_put")
int32_t kv_put(const char *key, uint32_t key_len, const char *val, uint32_t val_len);

/* Reply "error N" for a positive errno N. */
static cg_bytes error_reply(int err) {
    char text[24] = "error ";
    char digits[10];
    int n = 0, at = 6;
    do {
        digits[n++] = (char)('0' + err % 10);
        err /= 10;
    } while (err != 0);
    while (n > 0)
        text[at++] = digits[--n];
    return cg_return(text, (size_t)at);
}

CG_EXPORT("put")
cg_bytes put(char *input, uint32_t len) {
    char *eq = memchr(input, '=', len);
    if (eq == NULL) {
        free(input);
        return error_reply(EINVAL);
    }
    uint32_t key_len = (uint32_t)(eq - input);
    int32_t r = kv_put(input, key_len, eq + 1, len - key_len - 1);
    free(input);
    return cg_failed(r) ? error_reply(cg_errno(r)) : cg_return("ok", 2);
}

CG_EXPORT("get")
cg_bytes get(char *key, uint32_t key_len) {
    /* Try a small stack buffer first; most values fit. */
    char small[64];
    int32_t r = kv_get(key, key_len, small, sizeof small);
    if (cg_failed(r)) {
        free(key);
        return error_reply(cg_errno(r));
    }
    if ((uint32_t)r <= sizeof small) {
        free(key);
        return cg_return(small, (size_t)r);
    }

    /* The value is longer: r is its full length, so ask again with room for it. */
    uint32_t need = (uint32_t)r;
    char *big = malloc(need);
    if (big == NULL) {
        free(key);
        return error_reply(ENOMEM);
    }
    r = kv_get(key, key_len, big, need);
    free(key);
    /* The host may have changed the value between the two calls: use what fits. */
    cg_bytes reply = cg_failed(r) ? error_reply(cg_errno(r))
                                  : cg_return(big, (uint32_t)r < need ? (uint32_t)r : need);
    free(big);
    return reply;
}
