// callgate-build: command
/*
 * config — reads an optional config file; what it does when it cannot depends
 * on *why* it cannot.
 *
 *   config PATH
 *
 * The common pattern in real programs:
 *   - the file opens: print "config: <its first line>", exit 0;
 *   - ENOENT ("no such file") or ENOSYS ("no filesystem here"): there is no
 *     config, so print "config: none, using defaults" and exit 0;
 *   - anything else, e.g. EPERM or EACCES ("you may not"): the config exists
 *     but cannot be read, and running without it could be wrong, so print
 *     "config: PATH: <reason>" to stderr and exit 1.
 *
 * So a policy that denies path_open with ERRNO(ENOSYS) makes this program run
 * on its defaults, while ERRNO(EPERM) stops it. Choose the errno for the
 * behaviour you want: ENOSYS says "this does not exist here", EPERM says "this
 * exists and you are forbidden", and programs act on the difference.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: config PATH\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r"); /* the path_open gate */
    if (f == NULL) {
        if (errno == ENOENT || errno == ENOSYS) {
            printf("config: none, using defaults\n");
            return 0;
        }
        fprintf(stderr, "config: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char line[256] = "";
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    printf("config: %s\n", line);
    return 0;
}
