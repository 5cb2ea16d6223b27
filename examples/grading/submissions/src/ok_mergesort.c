// callgate-build: command
/* ok_mergesort: a top-down merge sort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sort(long long *a, long long *tmp, size_t n) {
    if (n < 2)
        return;
    size_t h = n / 2, i = 0, j = h, k = 0;
    sort(a, tmp, h);
    sort(a + h, tmp, n - h);
    while (i < h && j < n)
        tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
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
    long long *tmp = malloc((n ? n : 1) * sizeof *tmp);
    sort(v, tmp, n);
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
