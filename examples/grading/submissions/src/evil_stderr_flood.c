// callgate-build: command
/* evil_stderr_flood: floods stderr, where nobody looks. */
#include <stdio.h>

int main(void) {
    for (;;)
        fputs("debug debug debug debug debug debug debug debug debug debug\n", stderr);
}
