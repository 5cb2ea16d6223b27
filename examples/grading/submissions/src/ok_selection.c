// callgate-build: command
/* ok_selection: selection sort: quadratic, still inside the fuel. */
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
    for (size_t i = 0; i + 1 < n; i++) {
        size_t m = i;
        for (size_t j = i + 1; j < n; j++)
            if (v[j] < v[m])
                m = j;
        long long t = v[i];
        v[i] = v[m];
        v[m] = t;
    }
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
