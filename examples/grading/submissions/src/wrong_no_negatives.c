// callgate-build: command
/* wrong_no_negatives: its parser ignores minus signs. */
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
        while (ch != EOF && (ch < '0' || ch > '9'))
            ch = getchar();
        if (ch == EOF)
            break;
        long long x = 0;
        while (ch >= '0' && ch <= '9') {
            x = x * 10 + (ch - '0');
            ch = getchar();
        }
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
