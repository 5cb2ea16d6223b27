// callgate-build: command
/* ok_fgets_strtoll: reads lines with fgets and splits them with strtoll. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    static char line[1 << 20];
    size_t n = 0, cap = 64;
    long long *v = malloc(cap * sizeof *v), sum = 0;
    while (fgets(line, sizeof line, stdin)) {
        char *p = line, *end;
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
    }
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
