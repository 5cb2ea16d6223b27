// callgate-build: command
/* wrong_trailing_space: leaves a space at the end of the sorted line. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    size_t n = 0, cap = 16;
    long long *v = malloc(cap * sizeof *v), x, sum = 0;
    while (scanf("%lld", &x) == 1) {
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
        }
        v[n++] = x;
        sum += x;
    }
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum %lld\nsorted ", n, sum);
    for (size_t i = 0; i < n; i++)
        printf("%lld ", v[i]);
    printf("\n");
    return 0;
}
