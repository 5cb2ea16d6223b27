/* callgate native core: the ticker.
 *
 * A thread that calls tick(target) every period while it is running, without
 * Python and without the GIL. callgate points it at wasmtime's
 * wasmtime_engine_increment_epoch and a reference to an engine, so deadlines
 * (epoch interruption) hold whatever the host's Python threads do.
 *
 * The schedule is anchored to CLOCK_MONOTONIC: tick k (k = 1, 2, ...) is due at
 * origin + k * period, and a wake-up makes every tick that is due, so a thread
 * that was not scheduled for a while catches up instead of drifting late. The
 * two decision functions below are the whole schedule; callgate/native/ticker.py
 * has their Python twins, and a test holds them equal.
 */
#ifndef CALLGATE_NATIVE_TICKER_H
#define CALLGATE_NATIVE_TICKER_H

#include <stdint.h>

typedef void (*cg_tick_fn)(void *target);

/* Ticks due at now_ns that have not been made: floor((now - origin) / period)
 * minus done, or 0 (also when now < origin or period == 0). Never overflows. */
uint64_t cg_ticks_due(uint64_t origin_ns, uint64_t now_ns, uint64_t period_ns,
                      uint64_t done);

/* When tick done + 1 is due: origin + (done + 1) * period, computed exactly and
 * saturated at UINT64_MAX. */
uint64_t cg_next_tick_ns(uint64_t origin_ns, uint64_t period_ns, uint64_t done);

typedef struct cg_ticker cg_ticker;

typedef struct {
    uint64_t ticks;     /* tick() calls made since cg_ticker_new */
    int running;        /* 1 between cg_ticker_run(t, 1) and cg_ticker_run(t, 0) */
    int thread_started; /* the thread exists (it is never ended before free) */
} cg_ticker_state;

/* A parked ticker (no thread yet). tick and period_ns must be non-zero.
 * release(target), if release is not NULL, is called once by cg_ticker_free
 * after the last tick. name (may be NULL) names the thread, cut to 15 bytes.
 * NULL when out of memory or the arguments are invalid. */
cg_ticker *cg_ticker_new(cg_tick_fn tick, void *target, cg_tick_fn release,
                         uint64_t period_ns, const char *name);

/* Run (1) or park (0). Running restarts the schedule at now; the first call
 * starts the thread (signals blocked, small stack). Parking waits for a tick
 * in progress: once cg_ticker_run(t, 0) returns, tick() is not called again
 * until the ticker runs again. The thread survives parking, so running again
 * needs no new thread (a process sealed by seccomp cannot clone).
 * 0, or the error number of a failed pthread_create (the ticker stays parked). */
int cg_ticker_run(cg_ticker *t, int running);

void cg_ticker_read(cg_ticker *t, cg_ticker_state *out);

/* Stop and join the thread, release the target, free. t may be NULL. */
void cg_ticker_free(cg_ticker *t);

/* A tick function for tests and self-checks: target is a uint64_t counter,
 * incremented atomically. cg_count_read reads one atomically. */
void cg_count_tick(void *counter);
uint64_t cg_count_read(const uint64_t *counter);

#endif
