// callgate-build: command
/* ok_two_buffers: counts first into a growing buffer, sums after sorting. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    size_t n = 0, cap = 1;
    long long *v = malloc(sizeof *v), x, sum = 0;
    while (scanf("%lld", &x) == 1) {
        if (n == cap) {
            long long *bigger = malloc(2 * cap * sizeof *v);
            for (size_t i = 0; i < n; i++)
                bigger[i] = v[i];
            free(v);
            v = bigger;
            cap *= 2;
        }
        v[n++] = x;
    }
    qsort(v, n, sizeof *v, cmp);
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
