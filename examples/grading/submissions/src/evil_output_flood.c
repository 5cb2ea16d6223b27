// callgate-build: command
/* evil_output_flood: floods stdout. */
#include <stdio.h>

int main(void) {
    for (;;)
        fputs("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", stdout);
}
