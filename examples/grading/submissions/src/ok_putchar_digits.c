// callgate-build: command
/* ok_putchar_digits: prints numbers digit by digit with putchar. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void put(long long x) {
    char digits[24];
    int k = 0;
    unsigned long long u = x < 0 ? 0 - (unsigned long long)x : (unsigned long long)x;
    do
        digits[k++] = (char)('0' + u % 10);
    while (u /= 10);
    if (x < 0)
        putchar('-');
    while (k)
        putchar(digits[--k]);
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
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum ", n);
    put(sum);
    printf("\nsorted");
    for (size_t i = 0; i < n; i++) {
        putchar(' ');
        put(v[i]);
    }
    putchar('\n');
    return 0;
}
