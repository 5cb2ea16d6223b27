// callgate-build: command -Wno-unused-result
/*
 * escape_dotdot — hostile: tries to leave its preopen (fd 3) with "..".
 *
 *   escape_dotdot       prints "<attempt> <errno>" per attempt; 0 would mean it got out
 *
 * Every attempt asks for write + truncate, so a success would damage the host file.
 */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

static const char *ATTEMPTS[] = {
    "../secret", "../outside/secret", "./../secret", "sub/../../secret",
    "sub/../sub/../../secret", "sub/./../../outside/secret", "..", "../", "sub/../..",
};

int main(void) {
    __wasi_path_create_directory(3, "sub");
    for (size_t i = 0; i < sizeof ATTEMPTS / sizeof *ATTEMPTS; i++) {
        __wasi_fd_t fd;
        __wasi_errno_t e = __wasi_path_open(3, 1, ATTEMPTS[i], __WASI_OFLAGS_TRUNC,
                                            __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_READ,
                                            0, 0, &fd);
        if (e == 0) {
            __wasi_ciovec_t iov = {(const uint8_t *)"PWNED", 5};
            __wasi_size_t n;
            __wasi_fd_write(fd, &iov, 1, &n);
            __wasi_fd_close(fd);
        }
        printf("open %s %d\n", ATTEMPTS[i], e);
    }
    printf("mkdir ../evil %d\n", __wasi_path_create_directory(3, "../evil"));
    printf("unlink ../secret %d\n", __wasi_path_unlink_file(3, "../secret"));
    printf("rmdir ../outside %d\n", __wasi_path_remove_directory(3, "../outside"));
    printf("symlink ../evil %d\n", __wasi_path_symlink("x", 3, "../evil"));
    __wasi_filestat_t st;
    printf("stat ../secret %d\n", __wasi_path_filestat_get(3, 0, "../secret", &st));
    printf("utimes ../secret %d\n",
           __wasi_path_filestat_set_times(3, 0, "../secret", 0, 0, __WASI_FSTFLAGS_MTIM));
    return 0;
}
