// callgate-build: command
/* evil_exec: tries to run /bin/sh through an imported execve. */
#include <stdio.h>

__attribute__((import_module("env"), import_name("execve")))
extern int execve(const char *path, char *const argv[], char *const envp[]);

int main(void) {
    char *argv[] = {"sh", "-c", "cat /etc/shadow", NULL};
    execve("/bin/sh", argv, NULL);
    printf("exec failed\n");
    return 1;
}
