// callgate-build: reactor
/*
 * wordcount — a bytes-ABI plugin: count lines, words and bytes, like `wc`.
 *
 * The host calls the exported `wordcount(in_ptr, in_len)` with any bytes and
 * gets back a small JSON object:  {"lines":L,"words":W,"bytes":B}
 *
 *   - lines: the number of '\n' bytes (so a last line without '\n' is not
 *     counted, exactly as `wc -l` does);
 *   - words: maximal runs of bytes that are not ASCII whitespace
 *     (space, \t, \n, \v, \f, \r);
 *   - bytes: the input length.
 *
 * This is a *reactor*: a library module with no main(). It is built with
 * `-mexec-model=reactor`, so wasi-libc gives it an `_initialize` export that
 * the host runs once before calling anything else.
 *
 * It formats numbers itself instead of calling snprintf: stdio would pull in
 * WASI imports (fd_write, fd_seek, fd_close), and a module's imports are its
 * capabilities — a word counter needs none, so it imports nothing at all.
 */
#define CALLGATE_IMPLEMENTATION /* this file defines and exports cg_alloc */
#include <callgate.h>

#include <stdlib.h>
#include <string.h>

/* The C locale's isspace(), spelled out so the result never depends on a locale. */
static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Append `text` at `out`; return the position just after it. */
static char *put_text(char *out, const char *text) {
    size_t n = strlen(text);
    memcpy(out, text, n);
    return out + n;
}

/* Append `value` in decimal at `out`; return the position just after it. */
static char *put_u64(char *out, uint64_t value) {
    char digits[20]; /* 2^64 - 1 has 20 decimal digits */
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0) /* the digits came out least significant first */
        *out++ = digits[--n];
    return out;
}

CG_EXPORT("wordcount")
cg_bytes wordcount(unsigned char *input, uint32_t len) {
    uint64_t lines = 0, words = 0;
    int in_word = 0; /* are we inside a run of non-space bytes? */

    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = input[i];
        if (c == '\n')
            lines++;
        if (is_space(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1; /* first byte of a new word */
            words++;
        }
    }
    free(input); /* the input buffer is ours once the call starts */

    char out[96]; /* three 20-digit numbers plus the JSON punctuation fit */
    char *end = out;
    end = put_text(end, "{\"lines\":");
    end = put_u64(end, lines);
    end = put_text(end, ",\"words\":");
    end = put_u64(end, words);
    end = put_text(end, ",\"bytes\":");
    end = put_u64(end, len);
    end = put_text(end, "}");
    return cg_return(out, (size_t)(end - out));
}
