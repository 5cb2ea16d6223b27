// callgate-build: command
/* evil_infinite_loop: never stops. */
int main(void) {
    volatile unsigned long spins = 0;
    for (;;)
        spins++;
}
