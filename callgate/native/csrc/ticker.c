/* callgate native core: the ticker (see ticker.h). */
#define _GNU_SOURCE
#include "ticker.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_S 1000000000ull
/* The thread runs tick() and libc only: a small stack is plenty. */
#define TICKER_STACK (256u * 1024u)

struct cg_ticker {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    cg_tick_fn tick;
    void *target;
    cg_tick_fn release;
    uint64_t period_ns;
    /* Guarded by mu. */
    uint64_t origin_ns; /* the schedule's start: tick k is due at origin + k * period */
    uint64_t done;      /* ticks made since origin */
    uint64_t ticks;     /* ticks made since creation */
    int running;
    int quit;
    int thread_started;
    int alive; /* the thread has run its first line: its start-up syscalls are behind it */
    pthread_t thread;
    char name[16];
};

uint64_t cg_ticks_due(uint64_t origin_ns, uint64_t now_ns, uint64_t period_ns,
                      uint64_t done)
{
    if (period_ns == 0 || now_ns <= origin_ns)
        return 0;
    uint64_t elapsed = (now_ns - origin_ns) / period_ns;
    return elapsed > done ? elapsed - done : 0;
}

uint64_t cg_next_tick_ns(uint64_t origin_ns, uint64_t period_ns, uint64_t done)
{
    if (period_ns == 0)
        return origin_ns;
    /* (done + 1) * period > UINT64_MAX exactly when done >= UINT64_MAX / period
       (this also covers done + 1 itself overflowing). */
    if (done >= UINT64_MAX / period_ns)
        return UINT64_MAX;
    uint64_t offset = (done + 1) * period_ns;
    return origin_ns > UINT64_MAX - offset ? UINT64_MAX : origin_ns + offset;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0 || ts.tv_sec < 0)
        return 0; /* cannot happen for CLOCK_MONOTONIC; 0 makes no tick due */
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static struct timespec to_timespec(uint64_t ns)
{
    struct timespec ts;
    uint64_t sec = ns / NS_PER_S;
    if (sec > (uint64_t)INT_MAX) /* far future on any time_t: wake and re-check */
        sec = (uint64_t)INT_MAX;
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)(ns % NS_PER_S);
    return ts;
}

static void *ticker_main(void *arg)
{
    cg_ticker *t = arg;
    if (t->name[0] != '\0')
        (void)pthread_setname_np(pthread_self(), t->name);
    pthread_mutex_lock(&t->mu);
    /* Tell cg_ticker_run we exist: a caller about to lock the process down (seccomp
     * allows no rseq or prctl after it) must not race a thread still starting. */
    t->alive = 1;
    pthread_cond_broadcast(&t->cv);
    while (!t->quit) {
        if (!t->running) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        uint64_t now = now_ns();
        uint64_t due = cg_ticks_due(t->origin_ns, now, t->period_ns, t->done);
        if (due != 0) {
            /* done + due == floor((now - origin) / period): no overflow. */
            t->done += due;
            for (uint64_t i = 0; i < due; i++)
                t->tick(t->target);
            t->ticks += due;
            continue;
        }
        struct timespec until =
            to_timespec(cg_next_tick_ns(t->origin_ns, t->period_ns, t->done));
        /* ETIMEDOUT, a run/park/free signal, or a spurious wake-up: re-check. */
        (void)pthread_cond_timedwait(&t->cv, &t->mu, &until);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

cg_ticker *cg_ticker_new(cg_tick_fn tick, void *target, cg_tick_fn release,
                         uint64_t period_ns, const char *name)
{
    if (tick == NULL || period_ns == 0)
        return NULL;
    cg_ticker *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    int bad = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0
              || pthread_cond_init(&t->cv, &attr) != 0;
    pthread_condattr_destroy(&attr);
    if (bad)
        goto fail;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        pthread_cond_destroy(&t->cv);
        goto fail;
    }
    t->tick = tick;
    t->target = target;
    t->release = release;
    t->period_ns = period_ns;
    if (name != NULL)
        (void)snprintf(t->name, sizeof t->name, "%s", name);
    return t;
fail:
    free(t);
    return NULL;
}

/* With mu held. Every signal blocked in the new thread: it must never run a
 * handler (Python's, or one an application installed) in the middle of a tick. */
static int start_thread(cg_ticker *t)
{
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err != 0)
        return err;
    (void)pthread_attr_setstacksize(&attr, TICKER_STACK); /* EINVAL: keep the default */
    sigset_t all, old;
    sigfillset(&all);
    err = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (err == 0) {
        err = pthread_create(&t->thread, &attr, ticker_main, t);
        (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return err;
}

int cg_ticker_run(cg_ticker *t, int running)
{
    int err = 0;
    pthread_mutex_lock(&t->mu);
    if (running && !t->running && !t->quit) {
        if (!t->thread_started) {
            err = start_thread(t);
            t->thread_started = err == 0;
            while (err == 0 && !t->alive) /* see ticker_main */
                pthread_cond_wait(&t->cv, &t->mu);
        }
        if (err == 0) {
            t->origin_ns = now_ns();
            t->done = 0;
            t->running = 1;
            pthread_cond_signal(&t->cv);
        }
    } else if (!running && t->running) {
        t->running = 0;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return err;
}

void cg_ticker_read(cg_ticker *t, cg_ticker_state *out)
{
    pthread_mutex_lock(&t->mu);
    out->ticks = t->ticks;
    out->running = t->running;
    out->thread_started = t->thread_started;
    pthread_mutex_unlock(&t->mu);
}

void cg_ticker_free(cg_ticker *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->quit = 1;
    t->running = 0;
    pthread_cond_signal(&t->cv);
    int started = t->thread_started;
    pthread_mutex_unlock(&t->mu);
    if (started)
        pthread_join(t->thread, NULL);
    if (t->release != NULL)
        t->release(t->target);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

void cg_count_tick(void *counter)
{
    __atomic_fetch_add((uint64_t *)counter, 1, __ATOMIC_RELAXED);
}

uint64_t cg_count_read(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}
