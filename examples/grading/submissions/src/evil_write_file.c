// callgate-build: command
/* evil_write_file: leaves a file behind for the next student's run to find. */
#include <stdio.h>

int main(void) {
    FILE *f = fopen("/answers.txt", "w");
    if (f) {
        fputs("count 3\nsum 6\nsorted 1 2 3\n", f);
        fclose(f);
    }
    printf("planted: %s\n", f ? "yes" : "no");
    return 0;
}
