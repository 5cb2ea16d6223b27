// callgate-build: command
/*
 * lines — print N numbered lines: "line 1" ... "line N".
 *
 *   lines N [TEXT]     each line is "line <i>" or, with TEXT, "<i> <TEXT>"
 *
 * A pure stdout workload: stdio buffers the lines and flushes them through
 * the fd_write gate in large blocks (and once more at exit), so the number of
 * gated calls is far smaller than N. Exits 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: lines N [TEXT]\n");
        return 2;
    }
    char *end;
    long n = strtol(argv[1], &end, 10);
    if (*end != '\0' || n < 0) {
        fprintf(stderr, "lines: N must be a number >= 0, got '%s'\n", argv[1]);
        return 2;
    }
    for (long i = 1; i <= n; i++) {
        if (argc == 3)
            printf("%ld %s\n", i, argv[2]);
        else
            printf("line %ld\n", i);
    }
    return 0;
}
