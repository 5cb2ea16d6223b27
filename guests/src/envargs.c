// callgate-build: command
/*
 * envargs — print the arguments and environment a guest was given, then exit
 * with the status the environment asks for.
 *
 * Output, one item per line:
 *   argc=<n>
 *   argv[<i>]=<arg>          for every argument, argv[0] included
 *   env <NAME>=<value>       for every environment variable, in the given order
 * Exit status: the number in the environment variable EXIT_CODE (0..255), or 0
 * when it is not set.
 *
 * wasi-libc fetches these with the args_sizes_get/args_get and
 * environ_sizes_get/environ_get gates before main() runs: a policy that denies
 * them stops the program before its first line.
 */
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e != NULL; e++)
        printf("env %s\n", *e);

    const char *code = getenv("EXIT_CODE");
    return code ? atoi(code) & 0xff : 0;
}
