// callgate-build: command -Wno-unused-result
/*
 * escape_hardlink — hostile: tries to hard-link a host file from outside its preopen
 * (fd 3) to a name inside, then write through the link.
 *
 *   escape_hardlink OUTSIDE     OUTSIDE: the host's absolute path of a directory outside
 */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

static void write_through(const char *name) {
    __wasi_fd_t fd;
    __wasi_errno_t e = __wasi_path_open(3, 0, name, __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_WRITE,
                                        0, 0, &fd);
    if (e == 0) {
        __wasi_ciovec_t iov = {(const uint8_t *)"PWNED", 5};
        __wasi_size_t n;
        __wasi_fd_write(fd, &iov, 1, &n);
        __wasi_fd_close(fd);
    }
    printf("write %s %d\n", name, e);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    char abs_file[1024];
    snprintf(abs_file, sizeof abs_file, "%s/secret", argv[1]);
    printf("link ../outside/secret %d\n", __wasi_path_link(3, 0, "../outside/secret", 3, "h1"));
    printf("link abs %d\n", __wasi_path_link(3, 0, abs_file, 3, "h2"));
    printf("symlink out %d\n", __wasi_path_symlink(abs_file, 3, "sl"));
    printf("link follow sl %d\n", __wasi_path_link(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "sl", 3, "h3"));
    printf("link nofollow sl %d\n", __wasi_path_link(3, 0, "sl", 3, "h4"));
    printf("symlink rel %d\n", __wasi_path_symlink("../outside", 3, "rel"));
    printf("link rel/secret %d\n", __wasi_path_link(3, 0, "rel/secret", 3, "h5"));
    write_through("h1");
    write_through("h2");
    write_through("h3");
    write_through("h4");
    write_through("h5");
    return 0;
}
