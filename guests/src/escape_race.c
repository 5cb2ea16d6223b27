// callgate-build: command -Wno-unused-result
/*
 * escape_race — hostile, with a host-side accomplice: works on "flip/secret" in a
 * loop while the host swaps "flip" between a real directory and a symlink to a
 * directory outside the preopen (fd 3).
 *
 *   escape_race N [MODE]    MODE: open (write + truncate, the default), unlink,
 *                           rename (move it to "grabbed", then back), mkdir
 *                           (flip/newdir, then rmdir) or utimes
 *
 * Prints "opened <k> denied <m>": k calls succeeded (and, in open mode, wrote
 * "PWNED" into whatever they opened), m failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

static __wasi_errno_t attempt(const char *mode) {
    if (strcmp(mode, "unlink") == 0)
        return __wasi_path_unlink_file(3, "flip/secret");
    if (strcmp(mode, "rename") == 0) {
        __wasi_errno_t e = __wasi_path_rename(3, "flip/secret", 3, "grabbed");
        if (e == 0)
            __wasi_path_rename(3, "grabbed", 3, "flip/secret");
        return e;
    }
    if (strcmp(mode, "mkdir") == 0) {
        __wasi_errno_t e = __wasi_path_create_directory(3, "flip/newdir");
        if (e == 0)
            __wasi_path_remove_directory(3, "flip/newdir");
        return e;
    }
    if (strcmp(mode, "utimes") == 0)
        return __wasi_path_filestat_set_times(3, 0, "flip/secret", 0, 0,
                                              __WASI_FSTFLAGS_MTIM_NOW);
    __wasi_fd_t fd;
    __wasi_errno_t e = __wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "flip/secret",
                                        __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_WRITE, 0, 0, &fd);
    if (e == 0) {
        __wasi_ciovec_t iov = {(const uint8_t *)"PWNED", 5};
        __wasi_size_t w;
        __wasi_fd_write(fd, &iov, 1, &w);
        __wasi_fd_close(fd);
    }
    return e;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    const char *mode = argc > 2 ? argv[2] : "open";
    int opened = 0, denied = 0;
    for (int i = 0; i < n; i++) {
        if (attempt(mode) == 0)
            opened++;
        else
            denied++;
    }
    printf("opened %d denied %d\n", opened, denied);
    return 0;
}
