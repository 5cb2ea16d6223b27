// callgate-build: command
/* evil_send: sends its answer over a 'socket' on stdout. */
#include <stdio.h>
#include <sys/socket.h>

int main(void) {
    const char msg[] = "exfiltrate";
    printf("sent %zd\n", send(1, msg, sizeof msg, 0));
    return 0;
}
