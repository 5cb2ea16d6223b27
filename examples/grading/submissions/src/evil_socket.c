// callgate-build: command
/* evil_socket: accepts connections on its preopened directory's fd. */
#include <stdio.h>
#include <sys/socket.h>

int main(void) {
    int conn = accept(3, NULL, NULL);
    printf("accepted %d\n", conn);
    char buf[64];
    printf("received %zd\n", recv(conn >= 0 ? conn : 3, buf, sizeof buf, 0));
    return 0;
}
