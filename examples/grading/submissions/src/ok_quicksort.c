// callgate-build: command
/* ok_quicksort: a recursive quicksort, median of three. */
#include <stdio.h>
#include <stdlib.h>

static void swap(long long *a, long long *b) {
    long long t = *a;
    *a = *b;
    *b = t;
}

static void quick(long long *a, long n) {
    while (n > 1) {
        long m = n / 2;
        if (a[m] < a[0]) swap(&a[m], &a[0]);
        if (a[n - 1] < a[0]) swap(&a[n - 1], &a[0]);
        if (a[n - 1] < a[m]) swap(&a[n - 1], &a[m]);
        long long p = a[m];
        long i = 0, j = n - 1;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) swap(&a[i++], &a[j--]);
        }
        if (j + 1 < n - i) {
            quick(a, j + 1);
            a += i;
            n -= i;
        } else {
            quick(a + i, n - i);
            n = j + 1;
        }
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
    quick(v, (long)n);
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
