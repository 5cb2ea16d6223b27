// callgate-build: command
/* evil_fork: tries to fork: WASI has no fork, so it imports one. */
#include <stdio.h>

__attribute__((import_module("env"), import_name("fork"))) extern int fork(void);

int main(void) {
    int pid = fork();
    printf("forked: %d\n", pid);
    return 0;
}
