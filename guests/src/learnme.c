// callgate-build: command
/*
 * learnme — a small, predictable workload for `callgate learn`.
 *
 *   learnme [--stderr] [--random] [--file PATH]
 *
 * By default it reads the clock and prints one greeting line to stdout. Each
 * option adds exactly one new kind of access, so a policy learned from the
 * default run must deny each variant:
 *   --stderr     also writes a line to fd 2   (same gate fd_write, one more fd)
 *   --random     also draws 16 random bytes   (one more gate: random_get)
 *   --file PATH  also reads PATH's first line (more gates: path_open, fd_read)
 * Output is deterministic (the clock and random values are used, not printed).
 * Exit status: 0, or 1 when an access fails (after saying which on stdout).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) { /* the clock_time_get gate */
        printf("clock: %s\n", strerror(errno));
        return 1;
    }
    printf("hello from learnme (the clock says %s)\n", now.tv_sec > 0 ? "after 1970" : "1970");

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stderr") == 0) {
            if (fprintf(stderr, "a line on stderr\n") < 0) {
                printf("stderr: %s\n", strerror(errno));
                return 1;
            }
        } else if (strcmp(argv[i], "--random") == 0) {
            unsigned char buf[16];
            if (getentropy(buf, sizeof buf) != 0) { /* the random_get gate */
                printf("random: %s\n", strerror(errno));
                return 1;
            }
            printf("drew %zu random bytes\n", sizeof buf);
        } else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
            const char *path = argv[++i];
            FILE *f = fopen(path, "r");
            char line[256];
            if (f == NULL || fgets(line, sizeof line, f) == NULL) {
                printf("file %s: %s\n", path, strerror(errno));
                return 1;
            }
            fclose(f);
            printf("first line of %s: %s", path, line);
        } else {
            printf("unknown option %s\n", argv[i]);
            return 2;
        }
    }
    return 0;
}
