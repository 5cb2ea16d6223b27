// callgate-build: command -Wno-infinite-recursion
/* evil_stack: recurses without end (on the wasm stack: no local lives in memory). */
#include <stdio.h>

static volatile int sink;

static int down(int depth) {
    int below = down(depth + 1);
    sink = below;
    return below + depth;
}

int main(void) {
    printf("%d\n", down(0));
    return 0;
}
