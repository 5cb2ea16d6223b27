// callgate-build: command
/*
 * exitcode N: proc_exit(N) with N as given (any u32), no libc exit handling in between.
 * wasmtime traps on a status of 126 or more; callgate must do the same
 * (tests/wasi/test_wasi_differential.py).
 */
#include <stdlib.h>
#include <wasi/api.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    __wasi_proc_exit((__wasi_exitcode_t)strtoul(argv[1], NULL, 0));
}
