// callgate-build: command
/* ok_getchar: its own parser over getchar, qsort. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    size_t n = 0, cap = 64;
    long long *v = malloc(cap * sizeof *v), sum = 0;
    int ch = getchar();
    for (;;) {
        while (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r')
            ch = getchar();
        if (ch == EOF)
            break;
        int neg = ch == '-';
        if (neg)
            ch = getchar();
        long long x = 0;
        while (ch >= '0' && ch <= '9') {
            x = x * 10 + (ch - '0');
            ch = getchar();
        }
        if (neg)
            x = -x;
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
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
