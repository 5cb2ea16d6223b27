// callgate-build: command
/* ok_shellsort: Shell sort with Ciura's gaps. */
#include <stdio.h>
#include <stdlib.h>

static const size_t GAPS[] = {701, 301, 132, 57, 23, 10, 4, 1};

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
    for (size_t g = 0; g < sizeof GAPS / sizeof *GAPS; g++) {
        size_t gap = GAPS[g];
        for (size_t i = gap; i < n; i++) {
            long long t = v[i];
            size_t j = i;
            for (; j >= gap && v[j - gap] > t; j -= gap)
                v[j] = v[j - gap];
            v[j] = t;
        }
    }
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
