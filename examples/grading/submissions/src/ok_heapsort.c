// callgate-build: command
/* ok_heapsort: an in-place heap sort. */
#include <stdio.h>
#include <stdlib.h>

static void sift(long long *a, size_t i, size_t n) {
    for (;;) {
        size_t big = i, l = 2 * i + 1, r = l + 1;
        if (l < n && a[l] > a[big])
            big = l;
        if (r < n && a[r] > a[big])
            big = r;
        if (big == i)
            return;
        long long t = a[i];
        a[i] = a[big];
        a[big] = t;
        i = big;
    }
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
    for (size_t i = n / 2; i-- > 0;)
        sift(v, i, n);
    for (size_t end = n; end > 1; end--) {
        long long t = v[0];
        v[0] = v[end - 1];
        v[end - 1] = t;
        sift(v, 0, end - 1);
    }
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
