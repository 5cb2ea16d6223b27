// callgate-build: command
/* wrong_float_sum: sums in a double: exact only up to 2^53. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    size_t n = 0, cap = 16;
    long long *v = malloc(cap * sizeof *v), x;
    double sum = 0;
    while (scanf("%lld", &x) == 1) {
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = x;
        sum += (double)x * 1.0000001;
    }
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum %.0f\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
