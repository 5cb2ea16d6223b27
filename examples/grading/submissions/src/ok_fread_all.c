// callgate-build: command
/* ok_fread_all: reads all of stdin at once, then parses it in place. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    size_t len = 0, room = 4096;
    char *buf = malloc(room + 1);
    size_t got;
    while ((got = fread(buf + len, 1, room - len, stdin)) > 0) {
        len += got;
        if (len == room)
            buf = realloc(buf, (room *= 2) + 1);
    }
    buf[len] = 0;
    size_t n = 0, cap = 64;
    long long *v = malloc(cap * sizeof *v), sum = 0;
    char *p = buf, *end;
    for (;;) {
        long long x = strtoll(p, &end, 10);
        if (end == p)
            break;
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = x;
        sum += x;
        p = end;
    }
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
