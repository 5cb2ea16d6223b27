// callgate-build: command
/* evil_read_passwd: reads /etc/passwd instead of stdin. */
#include <stdio.h>

int main(void) {
    FILE *f = fopen("/etc/passwd", "r");
    if (!f) {
        perror("fopen /etc/passwd");
        return 1;
    }
    char line[256];
    while (fgets(line, sizeof line, f))
        fputs(line, stdout);
    return 0;
}
