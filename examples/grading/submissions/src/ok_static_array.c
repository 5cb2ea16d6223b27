// callgate-build: command
/* ok_static_array: a static array big enough for the limits the assignment states. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static long long v[100000];

int main(void) {
    size_t n = 0;
    long long x, sum = 0;
    while (n < sizeof v / sizeof *v && scanf("%lld", &x) == 1) {
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
