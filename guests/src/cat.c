// callgate-build: command
/*
 * cat — copy files (or stdin) to stdout, like the Unix tool.
 *
 *   cat            copies stdin to stdout
 *   cat A B ...    copies each named file in turn; "-" means stdin
 *
 * A WASI command: wasi-libc turns open/read/write into the WASI gates
 * path_open, fd_read and fd_write, so under callgate every one of those calls
 * is checked by the policy. A path only resolves inside a directory the host
 * preopened (e.g. `--dir /host/dir::/data`).
 *
 * Exit status: 0 on success, 1 if any file could not be read (after an error
 * message on stderr naming the file and the reason).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Write all of buf to fd, looping over short writes. Returns 0 or -1. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copy everything readable from `in` to stdout. Returns 0 or an errno. */
static int copy_to_stdout(int in) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            return 0; /* end of file */
        if (n < 0)
            return errno;
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
            return errno;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        int err = copy_to_stdout(STDIN_FILENO);
        if (err) {
            fprintf(stderr, "cat: stdin: %s\n", strerror(err));
            return 1;
        }
        return 0;
    }

    int status = 0;
    for (int i = 1; i < argc; i++) {
        int is_stdin = strcmp(argv[i], "-") == 0;
        int fd = is_stdin ? STDIN_FILENO : open(argv[i], O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "cat: %s: %s\n", argv[i], strerror(errno));
            status = 1;
            continue;
        }
        int err = copy_to_stdout(fd);
        if (err) {
            fprintf(stderr, "cat: %s: %s\n", argv[i], strerror(err));
            status = 1;
        }
        if (!is_stdin)
            close(fd);
    }
    return status;
}
