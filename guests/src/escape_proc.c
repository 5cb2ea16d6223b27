// callgate-build: command -Wno-unused-result
/*
 * escape_proc — hostile: tries to reach the host through /proc/self/root and /proc's
 * magic links, directly and through symlinks it plants in its preopen (fd 3).
 *
 *   escape_proc OUTSIDE        OUTSIDE: the host's absolute path of a directory outside
 */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

static void attempt(const char *path) {
    __wasi_fd_t fd;
    __wasi_errno_t e = __wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, path,
                                        __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_WRITE, 0, 0, &fd);
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
    snprintf(path, sizeof path, "/proc/self/root%s/secret", argv[1]);
    attempt(path);
    printf("symlink root %d\n", __wasi_path_symlink("/proc/self/root", 3, "root"));
    printf("symlink cwd %d\n", __wasi_path_symlink("/proc/self/cwd", 3, "cwd"));
    printf("symlink fd3 %d\n", __wasi_path_symlink("/proc/self/fd/3", 3, "fd3"));
    printf("symlink up %d\n", __wasi_path_symlink("../../../../../../../proc/self/root", 3, "up"));
    snprintf(path, sizeof path, "root%s/secret", argv[1]);
    attempt(path);
    snprintf(path, sizeof path, "up%s/secret", argv[1]);
    attempt(path);
    attempt("fd3/../outside/secret");
    attempt("cwd/secret");
    attempt("/proc/self/fd/3/../outside/secret");
    return 0;
}
