// callgate-build: command
/*
 * fallback — why the errno a policy answers with matters.
 *
 *   fallback FILE SIZE
 *
 * Makes FILE SIZE bytes long, the way careful programs do: first ask for the
 * space with posix_fallocate() (the fd_allocate gate), and if the platform says
 * the operation does not exist, fall back to writing zeros (fd_write).
 *
 *   - ENOSYS / ENOTSUP ("not implemented here"): a *normal* answer; the
 *     program takes the fallback path and still succeeds.
 *     Prints "fallocate unavailable (<reason>); wrote zeros" and exits 0.
 *   - any other error, e.g. EPERM ("you may not"): a real failure; the
 *     program reports it and exits 1.
 *   - success: prints "fallocate ok" and exits 0.
 *
 * So a policy that denies fd_allocate with ERRNO(ENOSYS) keeps this program
 * working, while ERRNO(EPERM) breaks it — the same choice libseccomp users
 * face with glibc, which falls back on ENOSYS but not on EPERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Extend fd to `size` bytes by writing zeros after its current end. */
static int write_zeros(int fd, long long size) {
    static const char zeros[4096];
    off_t at = lseek(fd, 0, SEEK_END);
    if (at < 0)
        return -1;
    while (at < size) {
        size_t n = size - at < (long long)sizeof zeros ? (size_t)(size - at) : sizeof zeros;
        ssize_t w = write(fd, zeros, n);
        if (w < 0)
            return -1;
        at += w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fallback FILE SIZE\n");
        return 2;
    }
    long long size = atoll(argv[2]);
    int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
        fprintf(stderr, "fallback: open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }

    int err = posix_fallocate(fd, 0, (off_t)size); /* returns the error, not -1 */
    if (err == 0) {
        printf("fallocate ok\n");
    } else if (err == ENOSYS || err == ENOTSUP) {
        if (write_zeros(fd, size) < 0) {
            fprintf(stderr, "fallback: writing zeros: %s\n", strerror(errno));
            return 1;
        }
        printf("fallocate unavailable (%s); wrote zeros\n", strerror(err));
    } else {
        fprintf(stderr, "fallback: fallocate %s: %s\n", argv[1], strerror(err));
        return 1;
    }
    close(fd);
    return 0;
}
