// callgate-build: command
/* evil_membomb: keeps 1 MiB blocks (touching every page) until malloc fails, then aborts. */
#include <stdio.h>
#include <stdlib.h>

struct block { struct block *next; char pages[(1 << 20) - sizeof(struct block *)]; };

int main(void) {
    struct block *held = NULL;
    size_t total = 0;
    for (;;) {
        struct block *b = malloc(sizeof *b);
        if (!b) {
            fprintf(stderr, "malloc failed after %zu MiB\n", total);
            abort();
        }
        for (size_t page = 0; page < sizeof b->pages; page += 4096)
            b->pages[page] = (char)total;
        b->next = held;
        held = b;
        total++;
    }
}
