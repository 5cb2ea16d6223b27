// callgate-build: command
/*
 * copyfile — copy SRC to DST in chunks of CHUNK bytes (the benchmark workload).
 *
 *   copyfile SRC DST CHUNK
 *
 * Each chunk is one read() and (at least) one write(), i.e. one fd_read and
 * one fd_write gate call, so CHUNK sets how many gated calls a copy makes:
 * copying 1 MiB with CHUNK=512 makes 2048 reads and 2048 writes, with
 * CHUNK=65536 only 16 of each.
 *
 * DST is created or truncated. On success prints "copied N bytes" and exits 0;
 * on any error prints the failing step and reason to stderr and exits 1
 * (2 for bad usage).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, const char *path) {
    fprintf(stderr, "copyfile: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: copyfile SRC DST CHUNK\n");
        return 2;
    }
    const char *src = argv[1], *dst = argv[2];
    char *end;
    long chunk = strtol(argv[3], &end, 10);
    if (*end != '\0' || chunk <= 0 || chunk > (1L << 24)) {
        fprintf(stderr, "copyfile: CHUNK must be 1..16777216 bytes, got '%s'\n", argv[3]);
        return 2;
    }

    char *buf = malloc((size_t)chunk);
    if (buf == NULL) {
        fprintf(stderr, "copyfile: cannot allocate %ld bytes\n", chunk);
        return 1;
    }
    int in = open(src, O_RDONLY);
    if (in < 0)
        return fail("open", src);
    /* 0644: owner read/write, others read (WASI ignores the mode, but say it). */
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0)
        return fail("create", dst);

    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(in, buf, (size_t)chunk);
        if (n == 0)
            break; /* end of SRC */
        if (n < 0)
            return fail("read", src);
        /* write() may accept fewer bytes than asked: keep going until done. */
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0)
                return fail("write", dst);
            done += w;
        }
        total += (unsigned long long)n;
    }
    if (close(out) < 0)
        return fail("close", dst);
    close(in);
    free(buf);
    printf("copied %llu bytes\n", total);
    return 0;
}
