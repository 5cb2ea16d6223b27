// callgate-build: command
/*
 * timerand — clocks, sleeping, randomness and yielding, with deterministic output.
 *
 *   timerand
 *
 * Values themselves differ from run to run, so it prints only properties that
 * any correct WASI must give, one "<check>: yes|no" line each, and exits 0 when
 * all are "yes", 1 otherwise:
 *   - the realtime clock is after 2020 and its resolution is at most 1 ms;
 *   - the monotonic clock never goes backwards;
 *   - nanosleep(20 ms) (a poll_oneoff clock subscription) lasts at least 20 ms;
 *   - 2 x 32 random bytes (random_get) differ and are not all zero;
 *   - sched_yield succeeds.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(const char *what, int ok) {
    printf("%s: %s\n", what, ok ? "yes" : "no");
    failures += !ok;
}

static long long nanos(clockid_t clock) {
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return -1;
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void) {
    struct timespec res;
    check("realtime after 2020", nanos(CLOCK_REALTIME) > 1577836800LL * 1000000000LL);
    check("realtime resolution <= 1ms", clock_getres(CLOCK_REALTIME, &res) == 0 &&
                                            res.tv_sec == 0 && res.tv_nsec <= 1000000);

    long long prev = nanos(CLOCK_MONOTONIC), ok = prev >= 0;
    for (int i = 0; i < 1000; i++) {
        long long now = nanos(CLOCK_MONOTONIC);
        ok = ok && now >= prev;
        prev = now;
    }
    check("monotonic never goes back", (int)ok);

    long long before = nanos(CLOCK_MONOTONIC);
    struct timespec nap = {0, 20 * 1000000};
    int slept = nanosleep(&nap, NULL) == 0;
    check("nanosleep 20ms lasts >= 20ms", slept && nanos(CLOCK_MONOTONIC) - before >= 20000000);

    unsigned char a[32], b[32], zero[32] = {0};
    int drawn = getentropy(a, sizeof a) == 0 && getentropy(b, sizeof b) == 0;
    check("random draws differ", drawn && memcmp(a, b, sizeof a) != 0);
    check("random is not all zero", drawn && memcmp(a, zero, sizeof a) != 0);

    check("sched_yield", sched_yield() == 0);
    return failures ? 1 : 0;
}
