// callgate-build: command
/* wrong_bubble_slow: bubble sort without early exit: too slow for 10,000 numbers. */
#include <stdio.h>
#include <stdlib.h>

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
    for (size_t pass = 0; pass < n; pass++)
        for (size_t i = 0; i + 1 < n; i++)
            if (v[i] > v[i + 1]) {
                long long t = v[i];
                v[i] = v[i + 1];
                v[i + 1] = t;
            }
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
