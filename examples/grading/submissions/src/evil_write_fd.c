// callgate-build: command
/* evil_write_fd: writes into fd 3 (its preopened directory) and fd 0, hoping either reaches a file. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    ssize_t dir = write(3, "planted\n", 8);
    ssize_t in = write(0, "planted\n", 8);
    printf("fd 3: %zd, fd 0: %zd\n", dir, in);
    return 0;
}
