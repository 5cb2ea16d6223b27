// callgate-build: command
/*
 * hostile_fd_exhaust — opens files and never closes them.
 *
 *   hostile_fd_exhaust DIR [MAX]
 *
 * Opens DIR (a preopened directory) again and again, up to MAX times (default:
 * no limit), keeping every fd. Each open is a path_open gate that creates a
 * host fd, so without a per-plugin fd cap one plugin could use up the host
 * process's fd limit and break the host and every other plugin.
 *
 * Expected: the runtime caps the fds a plugin may hold, so path_open fails
 * with EMFILE (or ENFILE) long before the host runs out; the guest then prints
 * "opened N, then: <error>" and exits 0. When the plugin is closed every one of
 * those host fds is closed too (the host's fd count returns to where it was).
 * With MAX reached first it prints "opened MAX" and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: hostile_fd_exhaust DIR [MAX]\n");
        return 2;
    }
    long max = argc == 3 ? atol(argv[2]) : -1;
    long opened = 0;
    while (max < 0 || opened < max) {
        if (open(argv[1], O_RDONLY | O_DIRECTORY) < 0) {
            printf("opened %ld, then: %s\n", opened, strerror(errno));
            return 0;
        }
        opened++; /* and never closed: that is the point */
    }
    printf("opened %ld\n", opened);
    return 0;
}
