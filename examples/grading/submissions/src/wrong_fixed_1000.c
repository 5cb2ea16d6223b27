// callgate-build: command
/* wrong_fixed_1000: a fixed array of 1000: keeps only the first 1000 numbers. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    long long v[1000], x, sum = 0;
    size_t n = 0;
    while (scanf("%lld", &x) == 1) {
        if (n < 1000)
            v[n++] = x;
        sum += x;
    }
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
