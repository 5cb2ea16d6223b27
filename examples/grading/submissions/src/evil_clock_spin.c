// callgate-build: command
/* evil_clock_spin: busy-waits on the clock, asking for the time in a loop. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec ts;
    unsigned long asked = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        asked++;
    }
    printf("%lu\n", asked);
}
