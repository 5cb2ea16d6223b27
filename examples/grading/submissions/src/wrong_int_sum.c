// callgate-build: command
/* wrong_int_sum: sums into an int: overflows past 2^31. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    size_t n = 0, cap = 16;
    long long *v = malloc(cap * sizeof *v), x;
    int sum = 0;
    while (scanf("%lld", &x) == 1) {
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = x;
        sum = (int)((unsigned)sum + (unsigned)x);
    }
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum %d\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
