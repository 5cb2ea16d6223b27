// callgate-build: command
/* wrong_first_line_only: reads only the first line of input. */
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    char line[1 << 16];
    size_t n = 0;
    long long v[4096], sum = 0;
    if (fgets(line, sizeof line, stdin)) {
        char *p = line, *end;
        for (;;) {
            long long x = strtoll(p, &end, 10);
            if (end == p || n == 4096)
                break;
            v[n++] = x;
            sum += x;
            p = end;
        }
    }
    qsort(v, n, sizeof *v, cmp);
    printf("count %zu\nsum %lld\nsorted", n, sum);
    for (size_t i = 0; i < n; i++)
        printf(" %lld", v[i]);
    printf("\n");
    return 0;
}
