// callgate-build: command -Wno-unused-result
/*
 * escape_absolute — hostile: tries absolute host paths through its preopen (fd 3).
 *
 *   escape_absolute OUTSIDE     OUTSIDE: the host's absolute path of a directory outside
 *
 * Prints "<attempt> <errno>"; every attempt wants write + truncate.
 */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

static void attempt(const char *path) {
    __wasi_fd_t fd;
    __wasi_errno_t e = __wasi_path_open(3, 1, path, __WASI_OFLAGS_TRUNC,
                                        __WASI_RIGHTS_FD_WRITE, 0, 0, &fd);
    if (e == 0) {
        __wasi_ciovec_t iov = {(const uint8_t *)"PWNED", 5};
        __wasi_size_t n;
        __wasi_fd_write(fd, &iov, 1, &n);
        __wasi_fd_close(fd);
    }
    printf("open %s %d\n", path, e);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    char path[1024];
    snprintf(path, sizeof path, "%s/secret", argv[1]);
    attempt(path);
    attempt("/etc/passwd");
    attempt("/");
    attempt("//secret");
    snprintf(path, sizeof path, "/%s/secret", argv[1]);
    attempt(path);
    snprintf(path, sizeof path, "%s/new", argv[1]);
    __wasi_fd_t fd;
    printf("create %s %d\n", path,
           __wasi_path_open(3, 0, path, __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_WRITE, 0, 0, &fd));
    printf("mkdir abs %d\n", __wasi_path_create_directory(3, path));
    return 0;
}
