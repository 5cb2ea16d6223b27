// callgate-build: command
/* evil_sleep_forever: sleeps, a second at a time, for ever. */
#include <unistd.h>

int main(void) {
    for (;;)
        sleep(1);
}
