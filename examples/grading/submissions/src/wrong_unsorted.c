// callgate-build: command
/* wrong_unsorted: forgets to sort. */
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
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
