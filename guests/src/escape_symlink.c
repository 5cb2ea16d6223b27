// callgate-build: command -Wno-unused-result
/*
 * escape_symlink — hostile: plants symlinks inside its preopen (fd 3) that point out,
 * then writes, truncates, stats and creates through them.
 *
 *   escape_symlink OUTSIDE      OUTSIDE: the host's absolute path of a directory outside
 */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

static void open_write(const char *label, const char *path, __wasi_oflags_t of) {
    __wasi_fd_t fd;
    __wasi_errno_t e = __wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, path, of,
                                        __WASI_RIGHTS_FD_WRITE, 0, 0, &fd);
    if (e == 0) {
        __wasi_ciovec_t iov = {(const uint8_t *)"PWNED", 5};
        __wasi_size_t n;
        __wasi_fd_write(fd, &iov, 1, &n);
        __wasi_fd_close(fd);
    }
    printf("%s %d\n", label, e);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    char abs_dir[1024], abs_file[1024];
    snprintf(abs_dir, sizeof abs_dir, "%s", argv[1]);
    snprintf(abs_file, sizeof abs_file, "%s/secret", argv[1]);
    printf("symlink rel %d\n", __wasi_path_symlink("../outside", 3, "rel"));
    printf("symlink abs dir %d\n", __wasi_path_symlink(abs_dir, 3, "absdir"));
    printf("symlink abs file %d\n", __wasi_path_symlink(abs_file, 3, "absfile"));
    printf("symlink rel file %d\n", __wasi_path_symlink("../outside/secret", 3, "relfile"));
    __wasi_path_create_directory(3, "deep");
    printf("symlink deep %d\n", __wasi_path_symlink("../../outside", 3, "deep/up"));
    printf("symlink chain %d\n", __wasi_path_symlink("rel", 3, "chain"));
    open_write("write rel/secret", "rel/secret", __WASI_OFLAGS_TRUNC);
    open_write("write absdir/secret", "absdir/secret", __WASI_OFLAGS_TRUNC);
    open_write("write absfile", "absfile", __WASI_OFLAGS_TRUNC);
    open_write("write relfile", "relfile", __WASI_OFLAGS_TRUNC);
    open_write("write deep/up/secret", "deep/up/secret", __WASI_OFLAGS_TRUNC);
    open_write("write chain/secret", "chain/secret", __WASI_OFLAGS_TRUNC);
    open_write("create rel/new", "rel/new", __WASI_OFLAGS_CREAT);
    open_write("create absdir/new", "absdir/new", __WASI_OFLAGS_CREAT);
    __wasi_filestat_t st;
    printf("stat follow absfile %d\n", __wasi_path_filestat_get(3, 1, "absfile", &st));
    printf("stat rel/secret %d\n", __wasi_path_filestat_get(3, 0, "rel/secret", &st));
    printf("utimes follow relfile %d\n",
           __wasi_path_filestat_set_times(3, 1, "relfile", 0, 0, __WASI_FSTFLAGS_MTIM));
    printf("mkdir rel/x %d\n", __wasi_path_create_directory(3, "rel/x"));
    printf("unlink rel/secret %d\n", __wasi_path_unlink_file(3, "rel/secret"));
    printf("symlink in rel %d\n", __wasi_path_symlink("x", 3, "rel/planted"));
    printf("rename into rel %d\n", __wasi_path_rename(3, "deep", 3, "rel/deep"));
    return 0;
}
