// callgate-build: command
/* evil_proc_raise: sends SIGKILL through proc_raise, the one signal call WASI preview1 has (wasi-libc no longer declares it). */
#include <stdint.h>
#include <stdio.h>

__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_raise")))
extern uint16_t proc_raise(uint8_t sig);

int main(void) {
    printf("raising SIGKILL...\n");
    fflush(stdout);
    printf("proc_raise: %u\n", proc_raise(9));
    return 0;
}
