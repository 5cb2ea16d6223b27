// callgate-build: command -Wno-unused-result
/*
 * escape_procfs — hostile: with a preopened host "/" (fd 3), tries to reach the host's
 * own state through pseudo filesystems and device nodes, which RESOLVE_BENEATH allows
 * (/proc/self is an ordinary symlink, /proc/self/mem an ordinary file).
 *
 *   escape_procfs PATH...     PATH: guest paths relative to fd 3 to open for reading
 *
 * For each path prints "open PATH ERRNO" and, when the open succeeded, "read PATH N"
 * with the bytes fd_pread gave at offset 0.
 * callgate must answer EACCES (2) for procfs, sysfs, … and forbidden devices.
 */
#include <stdint.h>
#include <stdio.h>
#include <wasi/api.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        __wasi_fd_t fd;
        __wasi_errno_t e = __wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, argv[i], 0,
                                            __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_SEEK, 0,
                                            0, &fd);
        printf("open %s %d\n", argv[i], e);
        if (e != 0)
            continue;
        char buf[64];
        __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
        __wasi_size_t n = 0;
        e = __wasi_fd_pread(fd, &iov, 1, 0, &n);
        printf("read %s %d %u\n", argv[i], e, (unsigned)n);
        __wasi_fd_close(fd);
    }
    return 0;
}
