// callgate-build: command
/* evil_dotdot: climbs out of its directory with .. to read the host's files. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    const char *paths[] = {"../../../../etc/shadow", "../other-student/answer.c", "/../etc/hosts"};
    for (int i = 0; i < 3; i++) {
        int fd = open(paths[i], O_RDONLY);
        char buf[128];
        ssize_t got = fd < 0 ? -1 : read(fd, buf, sizeof buf);
        printf("%s: %zd\n", paths[i], got);
    }
    return 0;
}
