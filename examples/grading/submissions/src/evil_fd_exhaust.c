// callgate-build: command
/* evil_fd_exhaust: opens its directory again and again, never closing. */
#include <fcntl.h>
#include <stdio.h>

int main(void) {
    long opened = 0;
    while (open("/", O_RDONLY | O_DIRECTORY) >= 0)
        opened++;
    printf("opened %ld\n", opened);
    return 0;
}
