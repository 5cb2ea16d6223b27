// callgate-build: command -Wno-unused-result
/*
 * escape_rename — hostile: tries to move files into or out of its preopen (fd 3), and to
 * move host files in, so it could change them.
 *
 *   escape_rename OUTSIDE      OUTSIDE: the host's absolute path of a directory outside
 */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    char abs_file[1024], abs_new[1024];
    snprintf(abs_file, sizeof abs_file, "%s/secret", argv[1]);
    snprintf(abs_new, sizeof abs_new, "%s/dropped", argv[1]);
    __wasi_fd_t fd;
    __wasi_path_open(3, 0, "mine", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_WRITE, 0, 0, &fd);
    __wasi_fd_close(fd);
    printf("rename out ../ %d\n", __wasi_path_rename(3, "mine", 3, "../outside/dropped"));
    printf("rename out abs %d\n", __wasi_path_rename(3, "mine", 3, abs_new));
    printf("rename in ../ %d\n", __wasi_path_rename(3, "../outside/secret", 3, "stolen"));
    printf("rename in abs %d\n", __wasi_path_rename(3, abs_file, 3, "stolen2"));
    printf("symlink rel %d\n", __wasi_path_symlink("../outside", 3, "rel"));
    printf("rename via symlink out %d\n", __wasi_path_rename(3, "mine", 3, "rel/dropped"));
    printf("rename via symlink in %d\n", __wasi_path_rename(3, "rel/secret", 3, "stolen3"));
    printf("rename over secret %d\n", __wasi_path_rename(3, "mine", 3, "rel/secret"));
    printf("rename preopen away %d\n", __wasi_path_rename(3, ".", 3, "../moved"));
    printf("rename symlink itself %d\n", __wasi_path_rename(3, "rel", 3, "rel2"));
    return 0;
}
