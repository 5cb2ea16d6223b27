// callgate-build: command -Wno-unused-result
/*
 * wasi_sockecho — accept one connection on the listening socket the host passed in
 * (fd 3), echo what it receives, upper-cased, then shut the connection down.
 *
 *   wasi_sockecho        prints "echoed <n>" and the errno of sock_* on stdin (ENOTSOCK)
 *
 * preview1 cannot create, bind or connect sockets: a guest can only use sockets
 * the host handed it, which is the point.
 */
#include <stdio.h>
#include <wasi/api.h>

int main(void) {
    __wasi_fd_t conn;
    __wasi_errno_t e = __wasi_sock_accept(3, 0, &conn);
    if (e != 0) {
        printf("accept %d\n", e);
        return 1;
    }
    uint8_t buf[256];
    size_t total = 0;
    for (;;) {
        __wasi_iovec_t iov = {buf, sizeof buf};
        __wasi_size_t n = 0;
        __wasi_roflags_t flags = 0;
        e = __wasi_sock_recv(conn, &iov, 1, 0, &n, &flags);
        if (e != 0 || n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] -= 32;
        __wasi_ciovec_t out = {buf, n};
        __wasi_size_t sent = 0;
        __wasi_sock_send(conn, &out, 1, 0, &sent);
        total += n;
    }
    printf("echoed %zu\n", total);
    printf("shutdown %d\n", __wasi_sock_shutdown(conn, __WASI_SDFLAGS_WR));
    printf("shutdown stdin %d\n", __wasi_sock_shutdown(0, __WASI_SDFLAGS_WR));
    printf("close %d\n", __wasi_fd_close(conn));
    return 0;
}
