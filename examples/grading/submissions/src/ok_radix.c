// callgate-build: command
/* ok_radix: an LSD radix sort on the numbers' biased bits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    unsigned long long *u = malloc((n ? n : 1) * sizeof *u), *t = malloc((n ? n : 1) * sizeof *t);
    for (size_t i = 0; i < n; i++)
        u[i] = (unsigned long long)v[i] ^ (1ULL << 63);
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((u[i] >> shift) & 255) + 1]++;
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++)
            t[count[(u[i] >> shift) & 255]++] = u[i];
        memcpy(u, t, n * sizeof *u);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (long long)(u[i] ^ (1ULL << 63));
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
