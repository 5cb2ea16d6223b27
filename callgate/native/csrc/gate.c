/* callgate native core: the gate core (see gate.h).
 *
 * Each WASI body below is the twin of one function in callgate/gates/wasi/ and
 * follows it check for check, in the same order, so the first error Python would
 * answer is the one C answers. The comments name the Python line each step mirrors.
 * A body returns a WASI errno (0: success), or HAND_OVER when Python must decide
 * (always before any side effect), or TRAPPED when the call must end with a pending
 * error (after side effects Python would also have made).
 */
#define _GNU_SOURCE
#include "gate.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* -- seccomp return values (callgate/bpf/actions.py) ---------------------------------- */

#define RET_ACTION_FULL 0xffff0000u
#define RET_DATA 0x0000ffffu
#define RET_KILL_PROCESS 0x80000000u
#define RET_KILL_THREAD 0x00000000u
#define RET_TRAP 0x00030000u
#define RET_ERRNO 0x00050000u
#define RET_USER_NOTIF 0x7fc00000u
#define RET_TRACE 0x7ff00000u
#define RET_LOG 0x7ffc0000u
#define RET_ALLOW 0x7fff0000u
#define MAX_ERRNO 4095u

/* Counter slots (callgate/runtime/audit.py COUNTER_NAMES). */
enum { C_ALLOW, C_LOG, C_ERRNO, C_TRAP, C_USER_NOTIF, C_TRACE, C_KILL_THREAD, C_KILL_PROCESS,
       NCOUNTERS };

/* -- WASI numbers (callgate/arch/wasi_errno.py, callgate/gates/wasi/types.py) ---------- */

enum {
    W_SUCCESS = 0, W_EAGAIN = 6, W_EBADF = 8, W_EFAULT = 21, W_EINVAL = 28, W_EIO = 29,
    W_EISDIR = 31, W_ENAMETOOLONG = 37, W_ENOTDIR = 54, W_ESPIPE = 70,
};
#define FT_BLOCK_DEVICE 1u
#define FT_DIRECTORY 3u
#define FT_REGULAR_FILE 4u
#define FDFLAGS_NONBLOCK 4u
#define R_FD_READ (1ull << 1)
#define R_FD_SEEK (1ull << 2)
#define R_FD_TELL (1ull << 5)
#define R_FD_WRITE (1ull << 6)
#define SEEK_RIGHTS (R_FD_SEEK | R_FD_TELL)
#define WHENCE_CUR 1u

/* Per-call limits (callgate/gates/wasi/fd.py); tests/native holds them equal. */
#define IOV_MAX_ 1024u
#define MAX_IO (1ull << 24)
#define READ_CHUNK (1u << 16)
#define PIPE_PIECE 4096u
#define RANDOM_CHUNK (1u << 16)
#define I64_MAX 0x7fffffffffffffffull

#define HAND_OVER (-1)
#define TRAPPED (-2)

#define AUDIT_WORDS (1u << 15) /* 256 KiB of records, allocated on the first denial */
#define AUDIT_HEADER 3u        /* t_ns, binding << 32 | ret, nargs */

/* -- state ------------------------------------------------------------------------------ */

typedef struct {
    cg_fd_info info;
    uint8_t open;
    uint32_t name_len;
    uint8_t *name;
} cg_fd;

typedef struct {
    int set;
    uint32_t count;
    uint64_t blob_len;
    uint8_t *blob;
    uint64_t *lens;
} cg_strings;

typedef struct {
    uint32_t disabled;
    uint32_t capacity;
    cg_fd *fds;
    cg_strings strings[2]; /* argv, environ */
} cg_wasi;

struct cg_plugin {
    cg_shared shared;
    cg_host_api api;
    uint64_t id;
    void *ctx;
    uint32_t refs;
    uint32_t nbindings;
    uint64_t *counts;
    uint32_t has_memory;
    uint64_t memory[4];
    cg_wasi *wasi;
    uint64_t *audit;
    uint64_t audit_used;
    uint8_t *bounce; /* READ_CHUNK bytes, for multi-iovec transfers */
};

struct cg_binding {
    cg_plugin *plugin;
    cg_binding_spec spec;
    uint32_t prog_len;
    cg_insn *prog;
};

static uint16_t errno_map[256];
static uint32_t errno_map_len;
static uint16_t errno_default = W_EIO;

void cg_gate_set_errno_map(const uint16_t *map, uint32_t n, uint16_t dflt)
{
    if (n > sizeof errno_map / sizeof errno_map[0])
        n = sizeof errno_map / sizeof errno_map[0];
    if (n != 0)
        memcpy(errno_map, map, n * sizeof map[0]);
    errno_map_len = n;
    errno_default = dflt;
}

/* wasi_errno.from_host, as _guard uses it (errno 0: EIO). */
static int from_host(int host)
{
    if (host > 0 && (uint32_t)host < errno_map_len)
        return errno_map[host];
    return host == 0 ? W_EIO : errno_default;
}

/* -- plugins ---------------------------------------------------------------------------- */

static void wasi_free(cg_wasi *w)
{
    if (w == NULL)
        return;
    for (uint32_t i = 0; i < w->capacity; i++)
        free(w->fds[i].name);
    for (int s = 0; s < 2; s++) {
        free(w->strings[s].blob);
        free(w->strings[s].lens);
    }
    free(w->fds);
    free(w);
}

cg_plugin *cg_plugin_new(const cg_host_api *api, uint64_t plugin_id, uint32_t nbindings,
                         void *ctx)
{
    if (api == NULL || api->trap_new == NULL || api->fallback == NULL || api->flush == NULL)
        return NULL;
    cg_plugin *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->counts = calloc((size_t)nbindings + 1, NCOUNTERS * sizeof(uint64_t));
    if (p->counts == NULL) {
        free(p);
        return NULL;
    }
    p->api = *api;
    p->id = plugin_id;
    p->ctx = ctx;
    p->nbindings = nbindings;
    p->refs = 1;
    p->shared.alive = 1;
    p->shared.deadline = INFINITY;
    return p;
}

static void plugin_unref(cg_plugin *p)
{
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    wasi_free(p->wasi);
    free(p->counts);
    free(p->audit);
    free(p->bounce);
    free(p);
}

void cg_plugin_release(cg_plugin *p)
{
    if (p == NULL)
        return;
    p->shared.alive = 0;
    plugin_unref(p);
}

cg_shared *cg_plugin_shared(cg_plugin *p) { return &p->shared; }

const uint64_t *cg_plugin_counts(const cg_plugin *p) { return p->counts; }

int cg_plugin_set_memory(cg_plugin *p, const void *memory, size_t size)
{
    if (memory == NULL) {
        p->has_memory = 0;
        return 0;
    }
    if (size > sizeof p->memory)
        return EINVAL;
    memset(p->memory, 0, sizeof p->memory);
    memcpy(p->memory, memory, size);
    p->has_memory = 1;
    return 0;
}

/* -- the audit buffer ------------------------------------------------------------------- */

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int audit_ready(cg_plugin *p)
{
    if (p->audit == NULL)
        p->audit = malloc(AUDIT_WORDS * sizeof(uint64_t));
    return p->audit != NULL;
}

int cg_audit_push(cg_plugin *p, uint64_t t_ns, uint32_t binding, uint32_t ret,
                  const uint64_t *args, uint32_t nargs)
{
    if (nargs > CG_AUDIT_MAX_ARGS || !audit_ready(p))
        return -1;
    uint64_t need = AUDIT_HEADER + nargs;
    if (p->audit_used > AUDIT_WORDS - need)
        return -1;
    uint64_t *at = p->audit + p->audit_used;
    at[0] = t_ns;
    at[1] = (uint64_t)binding << 32 | ret;
    at[2] = nargs;
    if (nargs != 0)
        memcpy(at + AUDIT_HEADER, args, nargs * sizeof(uint64_t));
    p->audit_used += need;
    p->shared.audit_records++;
    return 0;
}

uint64_t cg_audit_end(const cg_plugin *p) { return p->audit_used; }

void cg_audit_clear(cg_plugin *p)
{
    p->audit_used = 0;
    p->shared.audit_records = 0;
}

uint64_t cg_audit_read(const cg_plugin *p, uint64_t pos, cg_audit_record *out)
{
    if (p->audit == NULL || pos >= p->audit_used || p->audit_used - pos < AUDIT_HEADER)
        return 0;
    const uint64_t *at = p->audit + pos;
    uint64_t nargs = at[2];
    if (nargs > CG_AUDIT_MAX_ARGS || p->audit_used - pos - AUDIT_HEADER < nargs)
        return 0;
    out->t_ns = at[0];
    out->binding = (uint32_t)(at[1] >> 32);
    out->ret = (uint32_t)at[1];
    out->nargs = (uint32_t)nargs;
    memset(out->args, 0, sizeof out->args);
    if (nargs != 0)
        memcpy(out->args, at + AUDIT_HEADER, nargs * sizeof(uint64_t));
    return pos + AUDIT_HEADER + nargs;
}

void cg_audit_scan_run(const cg_plugin *p, cg_audit_scan *s)
{
    uint64_t pos = s->pos;
    s->ngroups = 0;
    while (p->audit != NULL && pos < p->audit_used && p->audit_used - pos >= AUDIT_HEADER) {
        const uint64_t *at = p->audit + pos;
        uint64_t next = pos + AUDIT_HEADER + at[2];
        uint32_t binding = (uint32_t)(at[1] >> 32), ret = (uint32_t)at[1];
        double moment = (double)at[0] / 1e9; /* as time.monotonic() makes seconds of ns */
        s->pos = pos;
        s->next = next;
        s->moment = moment;
        if (moment >= s->next_summary) { /* emit(): summaries due before this record */
            s->stop = CG_SCAN_SUMMARY;
            return;
        }
        uint32_t group = 0;
        while (group < s->ngroups
               && (s->group_binding[group] != binding || s->group_ret[group] != ret))
            group++;
        if (group == CG_SCAN_GROUPS) { /* a new group and no room: apply, then go on */
            s->stop = CG_SCAN_FULL;
            return;
        }
        int admitted = 1;
        if ((ret & RET_ACTION_FULL) != RET_KILL_PROCESS) { /* AuditSink._admit */
            if (!s->has_bucket) {
                s->has_bucket = 1;
                s->tokens = s->burst;
                s->last = moment;
            } else {
                double tokens = s->tokens + (moment - s->last) * s->rate;
                s->tokens = tokens < s->burst ? tokens : s->burst;
                s->last = moment;
            }
            if (s->tokens >= 1.0)
                s->tokens -= 1.0;
            else
                admitted = 0;
        }
        if (admitted) {
            s->stop = CG_SCAN_ADMITTED;
            return;
        }
        if (!s->has_held) { /* AuditSink._hold: the first record held */
            s->has_held = 1;
            s->held_since = moment;
            double due = moment + s->interval;
            if (due < s->next_summary)
                s->next_summary = due;
        }
        if (group == s->ngroups) {
            s->group_binding[group] = binding;
            s->group_ret[group] = ret;
            s->group_count[group] = 0;
            s->ngroups++;
        }
        s->group_count[group]++;
        pos = next;
    }
    s->pos = pos;
    s->next = pos;
    s->stop = CG_SCAN_END;
}

/* Buffer a denied call's record; a full buffer is flushed first. 0, or -1 when the
 * flush raised (the call must trap: pending FLUSH). */
static int audit_record(cg_plugin *p, const cg_binding *b, uint32_t ret, const uint64_t *args)
{
    uint64_t now = monotonic_ns();
    if (cg_audit_push(p, now, b->spec.index, ret, args, b->spec.nparams) == 0)
        return 0;
    if (p->api.flush(p->id) != 0)
        return -1;
    return cg_audit_push(p, now, b->spec.index, ret, args, b->spec.nparams) == 0 ? 0 : -1;
}

/* -- calls ------------------------------------------------------------------------------ */

int cg_call(cg_plugin *p, uint32_t depth, const void *func, uint64_t *slots, size_t nslots,
            void *err_out, void *trap_out)
{
    void **trap = trap_out;
    if (depth == 0)
        p->shared.output_used = 0;
    *trap = NULL;
    void *err = p->api.func_call(p->ctx, func, slots, nslots, trap);
    *(void **)err_out = err;
    int failed = err != NULL || *trap != NULL;
    if (depth == 0 && p->shared.audit_records != 0 && p->api.flush(p->id) != 0 && !failed)
        return 2;
    return failed;
}

/* -- bindings --------------------------------------------------------------------------- */

cg_binding *cg_binding_new(cg_plugin *p, const cg_binding_spec *spec, const cg_insn *prog,
                           uint32_t prog_len)
{
    if (p == NULL || spec == NULL || spec->nparams > CG_MAX_PARAMS || spec->body >= CG_BODY_COUNT
        || spec->deny > CG_DENY_NOTHING || spec->index >= p->nbindings
        || spec->binding_id > UINT64_MAX / 2)
        return NULL;
    if (!spec->has_constant && cg_bpf_check(prog, prog_len) != 0)
        return NULL;
    cg_binding *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    if (!spec->has_constant) {
        b->prog = malloc((size_t)prog_len * sizeof *prog);
        if (b->prog == NULL) {
            free(b);
            return NULL;
        }
        memcpy(b->prog, prog, (size_t)prog_len * sizeof *prog);
        b->prog_len = prog_len;
    }
    b->spec = *spec;
    b->plugin = p;
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
    return b;
}

void cg_binding_free(void *binding)
{
    cg_binding *b = binding;
    if (b == NULL)
        return;
    cg_plugin *p = b->plugin;
    free(b->prog);
    free(b);
    plugin_unref(p);
}

static uint32_t run_filter(const cg_binding *b, const uint64_t *args6)
{
    if (b->spec.has_constant)
        return b->spec.constant;
    cg_seccomp_data d;
    d.nr = b->spec.nr;
    d.arch = b->spec.arch;
    d.instruction_pointer = b->spec.index;
    memcpy(d.args, args6, sizeof d.args);
    return cg_bpf_run(b->prog, b->prog_len, &d);
}

uint32_t cg_binding_filter(const cg_binding *b, const uint64_t *args6)
{
    return run_filter(b, args6);
}

static void *trap(cg_plugin *p, uint32_t pending, const cg_binding *b, uint32_t ret,
                  const char *message)
{
    p->shared.pending = pending;
    p->shared.pending_binding = b->spec.index;
    p->shared.pending_ret = ret;
    return p->api.trap_new(message, strlen(message));
}

static void *hand_over(cg_plugin *p, const cg_binding *b, int allowed, void *caller,
                       uint64_t *slots, size_t nslots)
{
    uintptr_t env = (uintptr_t)(b->spec.binding_id * 2 + (allowed ? 1 : 0));
    return p->api.fallback((void *)env, caller, slots, nslots);
}

/* -- guest memory ----------------------------------------------------------------------- */

typedef struct {
    uint8_t *base;
    uint64_t size;
} cg_mem;

static int guest_memory(const cg_plugin *p, cg_mem *m)
{
    if (!p->has_memory || p->api.memory_data == NULL || p->api.memory_size == NULL)
        return 0;
    m->base = p->api.memory_data(p->ctx, p->memory);
    m->size = p->api.memory_size(p->ctx, p->memory);
    return m->base != NULL || m->size == 0;
}

/* GuestMemory.check: [ptr, ptr + len) inside memory, without overflow. */
static inline int in_bounds(const cg_mem *m, uint64_t ptr, uint64_t len)
{
    return len <= m->size && ptr <= m->size - len;
}

static inline void put_u32(const cg_mem *m, uint64_t ptr, uint32_t v)
{
    memcpy(m->base + ptr, &v, sizeof v);
}

static inline void put_u64(const cg_mem *m, uint64_t ptr, uint64_t v)
{
    memcpy(m->base + ptr, &v, sizeof v);
}

static inline void put_bytes(const cg_mem *m, uint64_t ptr, const void *src, uint64_t len)
{
    if (len != 0)
        memmove(m->base + ptr, src, len);
}

/* -- the fd mirror ---------------------------------------------------------------------- */

static int strings_ready(const cg_plugin *p, uint32_t which)
{
    return p->wasi != NULL && !p->wasi->disabled && p->wasi->strings[which].set;
}

/* FdTable.get: NULL when fd is not open (EBADF); *ok = 0 when C cannot serve this fd. */
static const cg_fd *fd_get(const cg_plugin *p, uint64_t fd, int *ok)
{
    const cg_wasi *w = p->wasi;
    *ok = w != NULL && !w->disabled;
    if (!*ok || fd >= w->capacity || !w->fds[fd].open)
        return NULL;
    if (w->fds[fd].info.exotic)
        *ok = 0;
    return &w->fds[fd];
}

static inline int is_dir(const cg_fd *e) { return e->info.filetype == FT_DIRECTORY; }

/* FdEntry.seekable */
static inline int seekable(const cg_fd *e)
{
    return e->info.host_fd >= 0 && (e->info.filetype == FT_REGULAR_FILE
                                    || e->info.filetype == FT_BLOCK_DEVICE);
}

/* fd.is_stream */
static inline int is_stream(const cg_fd *e)
{
    return e->info.host_fd >= 0 && !seekable(e) && !is_dir(e);
}

/* FdEntry.need: 0, ESPIPE (a stream lacking only seek rights) or EBADF. */
static int need(const cg_fd *e, uint64_t rights)
{
    uint64_t missing = rights & ~e->info.allowed;
    if (missing == 0)
        return 0;
    if ((missing & ~SEEK_RIGHTS) == 0 && !seekable(e) && !is_dir(e))
        return W_ESPIPE;
    return W_EBADF;
}

int cg_wasi_attach(cg_plugin *p, uint32_t capacity)
{
    if (p->wasi != NULL)
        return EEXIST;
    cg_wasi *w = calloc(1, sizeof *w);
    if (w == NULL)
        return ENOMEM;
    w->fds = calloc(capacity ? capacity : 1, sizeof *w->fds);
    if (w->fds == NULL) {
        free(w);
        return ENOMEM;
    }
    w->capacity = capacity;
    p->wasi = w;
    return 0;
}

int cg_wasi_set_strings(cg_plugin *p, uint32_t which, const uint8_t *blob, uint64_t blob_len,
                        const uint64_t *lens, uint32_t count)
{
    if (p->wasi == NULL || which > 1)
        return EINVAL;
    cg_strings *s = &p->wasi->strings[which];
    uint64_t total = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (lens[i] > blob_len - total)
            return EINVAL;
        total += lens[i];
    }
    if (total != blob_len)
        return EINVAL;
    uint8_t *copy = malloc(blob_len ? blob_len : 1);
    uint64_t *lcopy = malloc(count ? count * sizeof *lens : 1);
    if (copy == NULL || lcopy == NULL) {
        free(copy);
        free(lcopy);
        return ENOMEM;
    }
    if (blob_len != 0)
        memcpy(copy, blob, blob_len);
    if (count != 0)
        memcpy(lcopy, lens, count * sizeof *lens);
    free(s->blob);
    free(s->lens);
    s->blob = copy;
    s->lens = lcopy;
    s->blob_len = blob_len;
    s->count = count;
    s->set = 1;
    return 0;
}

void cg_wasi_disable(cg_plugin *p)
{
    if (p->wasi != NULL)
        p->wasi->disabled = 1;
}

int cg_wasi_set_fd(cg_plugin *p, uint32_t fd, const cg_fd_info *info, const uint8_t *name,
                   uint32_t name_len)
{
    cg_wasi *w = p->wasi;
    if (w == NULL)
        return EINVAL;
    if (fd >= w->capacity) { /* never, while FdTable keeps fd < max_fds: stop mirroring */
        w->disabled = 1;
        return ERANGE;
    }
    cg_fd *e = &w->fds[fd];
    uint8_t *copy = NULL;
    if (info->name_state == 1) {
        copy = malloc(name_len ? name_len : 1);
        if (copy == NULL) {
            w->disabled = 1;
            return ENOMEM;
        }
        if (name_len != 0)
            memcpy(copy, name, name_len);
    }
    free(e->name);
    e->name = copy;
    e->name_len = info->name_state == 1 ? name_len : 0;
    e->info = *info;
    e->open = 1;
    return 0;
}

void cg_wasi_clear_fd(cg_plugin *p, uint32_t fd)
{
    cg_wasi *w = p->wasi;
    if (w == NULL || fd >= w->capacity)
        return;
    cg_fd *e = &w->fds[fd];
    free(e->name);
    memset(e, 0, sizeof *e);
}

/* -- clocks, randomness, argv and environ ----------------------------------------------- */

/* clocks.host_clock: WASI clock ids 0 and 1 are Linux's; the CPU-time clocks (2, 3) are
 * EBADF, as in wasmtime; any other id EINVAL. 0 or the errno. */
static int host_clock(uint64_t id, clockid_t *out)
{
    if (id > 3)
        return W_EINVAL;
    if (id > 1)
        return W_EBADF;
    *out = id == 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC;
    return 0;
}

/* clock_time_get(clock_id, precision, ret) */
static int body_clock_time_get(cg_plugin *p, const uint64_t *a)
{
    clockid_t clock;
    int r = host_clock(a[0], &clock);
    if (r != 0)
        return r;
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return from_host(errno);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (!in_bounds(&m, a[2], 8))
        return W_EFAULT;
    put_u64(&m, a[2], ns);
    return W_SUCCESS;
}

/* Python's round() of a float: half to even. */
static double round_half_even(double x)
{
    double r = round(x);
    if (fabs(x - r) == 0.5)
        r = 2.0 * round(x / 2.0);
    return r;
}

/* clock_res_get(clock_id, ret): max(1, round(time.clock_getres(clock) * 1e9)) */
static int body_clock_res_get(cg_plugin *p, const uint64_t *a)
{
    clockid_t clock;
    int r = host_clock(a[0], &clock);
    if (r != 0)
        return r;
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    struct timespec ts;
    if (clock_getres(clock, &ts) != 0)
        return from_host(errno);
    double res = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9; /* time.clock_getres */
    double ns = round_half_even(res * 1e9);
    uint64_t value = ns < 1.0 ? 1 : (ns >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)ns);
    if (!in_bounds(&m, a[1], 8))
        return W_EFAULT;
    put_u64(&m, a[1], value);
    return W_SUCCESS;
}

/* random_get(buf, len): os.urandom in RANDOM_CHUNK pieces, straight into the guest. */
static int body_random_get(cg_plugin *p, const uint64_t *a)
{
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    uint64_t buf = a[0], len = a[1];
    if (!in_bounds(&m, buf, len))
        return W_EFAULT;
    uint64_t done = 0;
    while (done < len) {
        uint64_t want = len - done;
        if (want > RANDOM_CHUNK)
            want = RANDOM_CHUNK;
        ssize_t got = getrandom(m.base + buf + done, want, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (done == 0) /* e.g. ENOSYS: os.urandom has a fallback of its own */
                return HAND_OVER;
            return from_host(errno);
        }
        done += (uint64_t)got;
    }
    return W_SUCCESS;
}

/* args_sizes_get / environ_sizes_get (proc._sizes) */
static int body_sizes_get(cg_plugin *p, const uint64_t *a, uint32_t which)
{
    if (!strings_ready(p, which))
        return HAND_OVER;
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    const cg_strings *s = &p->wasi->strings[which];
    if (!in_bounds(&m, a[0], 4) || !in_bounds(&m, a[1], 4))
        return W_EFAULT;
    put_u32(&m, a[0], s->count);
    put_u32(&m, a[1], (uint32_t)s->blob_len);
    return W_SUCCESS;
}

/* args_get / environ_get (proc._fill): both ranges checked first, then pointer and string
 * for each item in turn, so overlapping ranges end as Python leaves them. */
static int body_strings_get(cg_plugin *p, const uint64_t *a, uint32_t which)
{
    if (!strings_ready(p, which))
        return HAND_OVER;
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    const cg_strings *s = &p->wasi->strings[which];
    uint64_t ptrs = a[0], buf = a[1];
    if (!in_bounds(&m, ptrs, 4ull * s->count) || !in_bounds(&m, buf, s->blob_len))
        return W_EFAULT;
    uint64_t from = 0;
    for (uint32_t i = 0; i < s->count; i++) {
        put_u32(&m, ptrs + 4ull * i, (uint32_t)buf);
        put_bytes(&m, buf, s->blob + from, s->lens[i]);
        buf += s->lens[i];
        from += s->lens[i];
    }
    return W_SUCCESS;
}

/* -- prestat and fdstat ----------------------------------------------------------------- */

/* fd_prestat_get(fd, ret) */
static int body_fd_prestat_get(cg_plugin *p, const uint64_t *a)
{
    int ok;
    const cg_fd *e = fd_get(p, a[0], &ok);
    if (!ok)
        return HAND_OVER;
    if (e == NULL || e->info.name_state == 0)
        return W_EBADF;
    if (e->info.name_state != 1)
        return HAND_OVER; /* a name Python must encode (and may refuse: EILSEQ) */
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    if (!in_bounds(&m, a[1], 8))
        return W_EFAULT;
    uint8_t prestat[8] = {0}; /* PRESTAT "<BxxxI": tag 0 (dir), pad, name length */
    memcpy(prestat + 4, &e->name_len, 4);
    put_bytes(&m, a[1], prestat, sizeof prestat);
    return W_SUCCESS;
}

/* fd_prestat_dir_name(fd, buf, buf_len): the buffer is checked before the fd. */
static int body_fd_prestat_dir_name(cg_plugin *p, const uint64_t *a)
{
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    if (!in_bounds(&m, a[1], a[2]))
        return W_EFAULT;
    int ok;
    const cg_fd *e = fd_get(p, a[0], &ok);
    if (!ok)
        return HAND_OVER;
    if (e == NULL)
        return W_EBADF;
    if (e->info.name_state == 0)
        return W_ENOTDIR; /* an open fd that is no preopen: wasmtime's answer */
    if (e->info.name_state != 1)
        return HAND_OVER;
    if (a[2] < e->name_len)
        return W_ENAMETOOLONG;
    put_bytes(&m, a[1], e->name, e->name_len);
    return W_SUCCESS;
}

/* fd_fdstat_get(fd, ret): FDSTAT "<BxHxxxxQQ", pads written as zeros. */
static int body_fd_fdstat_get(cg_plugin *p, const uint64_t *a)
{
    int ok;
    const cg_fd *e = fd_get(p, a[0], &ok);
    if (!ok)
        return HAND_OVER;
    if (e == NULL)
        return W_EBADF;
    cg_mem m;
    if (!guest_memory(p, &m))
        return HAND_OVER;
    if (!in_bounds(&m, a[1], 24))
        return W_EFAULT;
    uint8_t st[24] = {0};
    st[0] = e->info.filetype;
    memcpy(st + 2, &e->info.flags, 2);
    memcpy(st + 8, &e->info.rights_base, 8);
    memcpy(st + 16, &e->info.rights_inheriting, 8);
    put_bytes(&m, a[1], st, sizeof st);
    return W_SUCCESS;
}

/* -- reads and writes ------------------------------------------------------------------- */

typedef struct {
    uint32_t buf;
    uint32_t len;
} iov_t;

/* The iovecs, copied (fd.iovecs reads the array before any byte moves). */
typedef struct {
    iov_t v[IOV_MAX_];
    uint32_t n;
    uint32_t at;  /* the cursor: current iovec */
    uint64_t off; /* and the bytes done in it */
} iovs_t;

/* fd.first_buffer: fd.iovecs (EFAULT if the array is outside memory, then EINVAL past
 * IOV_MAX, then EFAULT for any buffer outside), then only the first non-empty buffer. */
static int load_iovecs(const cg_mem *m, uint64_t ptr, uint64_t count, iovs_t *out)
{
    if (!in_bounds(m, ptr, count * 8))
        return W_EFAULT;
    if (count > IOV_MAX_)
        return W_EINVAL;
    out->n = (uint32_t)count;
    out->at = 0;
    out->off = 0;
    if (count != 0)
        memcpy(out->v, m->base + ptr, count * sizeof(iov_t));
    for (uint32_t i = 0; i < out->n; i++)
        if (!in_bounds(m, out->v[i].buf, out->v[i].len))
            return W_EFAULT;
    uint32_t first = 0;
    while (first < out->n && out->v[first].len == 0)
        first++;
    if (first == out->n) {
        out->n = 0;
    } else {
        out->v[0] = out->v[first];
        out->n = 1;
    }
    return 0;
}

/* fd.capacity */
static uint64_t capacity(const iovs_t *io)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < io->n; i++)
        total += io->v[i].len;
    return total < MAX_IO ? total : MAX_IO;
}

/* The next contiguous guest span of at most limit bytes at the cursor (0: none left),
 * skipping empty iovecs as Scatter/Gather do. */
static uint64_t span(iovs_t *io, uint64_t limit, uint64_t *where)
{
    while (io->at < io->n && io->off == io->v[io->at].len) {
        io->at++;
        io->off = 0;
    }
    if (io->at == io->n || limit == 0)
        return 0;
    uint64_t avail = io->v[io->at].len - io->off;
    *where = (uint64_t)io->v[io->at].buf + io->off;
    return avail < limit ? avail : limit;
}

static void advance(iovs_t *io, uint64_t n)
{
    io->off += n;
    if (io->off == io->v[io->at].len) {
        io->at++;
        io->off = 0;
    }
}

/* Scatter.put: data into the iovecs at the cursor. */
static void scatter(const cg_mem *m, iovs_t *io, const uint8_t *data, uint64_t len)
{
    while (len != 0) {
        uint64_t where, n = span(io, len, &where);
        if (n == 0)
            return; /* cannot happen: len <= what the iovecs hold */
        put_bytes(m, where, data, n);
        advance(io, n);
        data += n;
        len -= n;
    }
}

/* Gather.take: the next at most limit bytes into out; the count. */
static uint64_t gather(const cg_mem *m, iovs_t *io, uint8_t *out, uint64_t limit)
{
    uint64_t got = 0;
    while (got < limit) {
        uint64_t where, n = span(io, limit - got, &where);
        if (n == 0)
            break;
        memcpy(out + got, m->base + where, n);
        advance(io, n);
        got += n;
    }
    return got;
}

static int bounce_ready(cg_plugin *p)
{
    if (p->bounce == NULL)
        p->bounce = malloc(READ_CHUNK);
    return p->bounce != NULL;
}

static int is_blocking_errno(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EALREADY || e == EINPROGRESS;
}

/* select.poll over one fd, no wait: ready (or hung up, or in error)? -1: poll failed. */
static int ready_now(int fd, short events)
{
    struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
    for (;;) {
        int r = poll(&pfd, 1, 0);
        if (r >= 0)
            return r > 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Plugin.check_deadline: time.monotonic() >= deadline. */
static int past_deadline(const cg_plugin *p)
{
    if (!p->shared.has_deadline)
        return 0;
    return (double)monotonic_ns() / 1e9 >= p->shared.deadline;
}

/* Plugin.charge_output: count n, then 0, or -1 once past the cap. */
static int charge(cg_plugin *p, uint64_t n)
{
    cg_shared *s = &p->shared;
    s->output_used = n > UINT64_MAX - s->output_used ? UINT64_MAX : s->output_used + n;
    return s->output_capped && s->output_used > s->output_cap ? -1 : 0;
}

static void uncharge(cg_plugin *p, uint64_t n)
{
    p->shared.output_used -= n < p->shared.output_used ? n : p->shared.output_used;
}

static ssize_t read_at(int fd, void *buf, size_t n, int positioned, uint64_t offset)
{
    for (;;) {
        ssize_t r = positioned ? pread(fd, buf, n, (off_t)offset) : read(fd, buf, n);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

static ssize_t write_at(int fd, const void *buf, size_t n, int positioned, uint64_t offset)
{
    for (;;) {
        ssize_t r = positioned ? pwrite(fd, buf, n, (off_t)offset) : write(fd, buf, n);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

/* Read up to n bytes at the cursor: straight into the guest when the span there is
 * contiguous, else through the bounce buffer, scattered (what os.read + Scatter.put do). */
static ssize_t read_span(cg_plugin *p, const cg_mem *m, iovs_t *io, int fd, uint64_t n,
                         int positioned, uint64_t offset)
{
    uint64_t where = 0, first = span(io, n, &where); /* skips empty iovecs only */
    ssize_t got;
    if (first == n) {
        got = read_at(fd, m->base + where, n, positioned, offset);
        if (got > 0)
            advance(io, (uint64_t)got);
        return got;
    }
    got = read_at(fd, p->bounce, n, positioned, offset);
    if (got > 0)
        scatter(m, io, p->bounce, (uint64_t)got);
    return got;
}

/* A call in progress: what a body needs besides its arguments. */
typedef struct {
    cg_plugin *p;
    const cg_binding *b;
    uint32_t pending; /* set with TRAPPED */
} call_t;

/* fd.read_into for a plain host fd: the byte count in *count, or an errno, HAND_OVER,
 * TRAPPED. A stream is read once if it is ready now; otherwise Python waits. */
static int read_into(call_t *c, const cg_mem *m, const cg_fd *e, iovs_t *io, int positioned,
                     uint64_t offset, uint64_t *count)
{
    cg_plugin *p = c->p;
    uint64_t want = capacity(io);
    int fd = e->info.host_fd;
    *count = 0;
    if (want == 0)
        return W_SUCCESS;
    if (io->n > 1 && !bounce_ready(p))
        return HAND_OVER;
    if (is_stream(e)) {
        uint64_t n = want < READ_CHUNK ? want : READ_CHUNK;
        int nonblock = (e->info.flags & FDFLAGS_NONBLOCK) != 0;
        int ready = ready_now(fd, POLLIN); /* wait_ready */
        if (ready < 0)
            return HAND_OVER;
        if (!ready)
            return nonblock ? W_EAGAIN : HAND_OVER; /* Python waits, up to the deadline */
        ssize_t got = read_span(p, m, io, fd, n, 0, 0);
        if (got < 0) {
            int err = errno;
            if (!is_blocking_errno(err) || nonblock)
                return from_host(err);
            if (past_deadline(p)) { /* check_deadline() after the BlockingIOError */
                c->pending = CG_PENDING_DEADLINE;
                return TRAPPED;
            }
            return HAND_OVER; /* nothing read: Python waits again */
        }
        *count = (uint64_t)got;
        return W_SUCCESS;
    }
    uint64_t done = 0;
    while (done < want) {
        if (done != 0 && past_deadline(p)) { /* a slow file system must not outlast the call */
            c->pending = CG_PENDING_DEADLINE;
            return TRAPPED;
        }
        uint64_t n = want - done < READ_CHUNK ? want - done : READ_CHUNK;
        if (positioned && offset + done > I64_MAX)
            return W_EINVAL; /* os.pread: OverflowError */
        ssize_t got = read_span(p, m, io, fd, n, positioned, offset + done);
        if (got < 0)
            return from_host(errno);
        done += (uint64_t)got;
        *count = done;
        if ((uint64_t)got < n)
            break;
    }
    return W_SUCCESS;
}

/* fd._write_stream for a plain host fd (a pipe, FIFO, tty, character device ...): PIPE_PIECE
 * bytes at a time while it stays writable; Python waits when the first byte cannot go. */
static int write_stream(call_t *c, const cg_mem *m, const cg_fd *e, iovs_t *io, uint64_t want,
                        uint64_t *count)
{
    cg_plugin *p = c->p;
    int fd = e->info.host_fd;
    int nonblock = (e->info.flags & FDFLAGS_NONBLOCK) != 0;
    uint8_t piece[PIPE_PIECE];
    uint64_t plen = 0, poff = 0; /* pending = piece[poff, plen) */
    uint64_t done = 0, charged = 0;
    *count = 0;
    if (want == 0)
        return W_SUCCESS;
    for (;;) {
        int ready = ready_now(fd, POLLOUT);
        if (ready < 0) {
            if (done == 0 && charged == 0)
                return HAND_OVER;
            return from_host(errno);
        }
        if (!ready) {
            if (!nonblock && done == 0) { /* ready(wait=True): Python blocks, from scratch */
                uncharge(p, charged);
                return HAND_OVER;
            }
            break;
        }
        if (poff == plen) {
            plen = gather(m, io, piece, PIPE_PIECE);
            poff = 0;
        }
        uint64_t pend = plen - poff;
        if (done + pend > charged) {
            if (charge(p, done + pend - charged) != 0) {
                c->pending = CG_PENDING_OUTPUT;
                return TRAPPED;
            }
            charged = done + pend;
        }
        ssize_t n = write_at(fd, piece + poff, pend, 0, 0);
        if (n < 0) {
            int err = errno;
            if (is_blocking_errno(err)) {
                if (done != 0 || nonblock)
                    break;
                if (past_deadline(p)) {
                    c->pending = CG_PENDING_DEADLINE;
                    return TRAPPED;
                }
                uncharge(p, charged); /* as if untouched: Python waits and starts again */
                return HAND_OVER;
            }
            if (done != 0)
                break; /* as write(2): the count now, the error on the next call */
            return from_host(err);
        }
        done += (uint64_t)n;
        poff += (uint64_t)n;
        if (done >= want)
            break;
    }
    if (done == 0)
        return W_EAGAIN;
    *count = done;
    return W_SUCCESS;
}

/* fd.write_from for a plain host fd. A file takes every byte in one write(2); C moves them
 * straight from the guest when they are contiguous, or through the bounce buffer when they
 * fit, and hands anything bigger to Python (before charging). */
static int write_from(call_t *c, const cg_mem *m, const cg_fd *e, iovs_t *io, int positioned,
                      uint64_t offset, uint64_t *count)
{
    cg_plugin *p = c->p;
    uint64_t want = capacity(io);
    *count = 0;
    if (is_stream(e))
        return write_stream(c, m, e, io, want, count);
    static const uint8_t nothing[1] = {0};
    const uint8_t *data = nothing;
    uint64_t where = 0, first = span(io, want, &where);
    if (want != 0) {
        if (first == want) {
            data = m->base + where;
        } else if (want <= READ_CHUNK && bounce_ready(p)) {
            gather(m, io, p->bounce, want);
            data = p->bounce;
        } else {
            return HAND_OVER;
        }
        if (charge(p, want) != 0) {
            c->pending = CG_PENDING_OUTPUT;
            return TRAPPED;
        }
    }
    ssize_t n = write_at(e->info.host_fd, data, want, positioned, offset);
    if (n < 0)
        return from_host(errno);
    *count = (uint64_t)n;
    return W_SUCCESS;
}

/* fd_read/fd_write(fd, iovs, iovs_len, ret) and fd_pread/fd_pwrite(fd, iovs, iovs_len,
 * offset, ret): the checks of fd.py's four gates, then read_into or write_from. */
static int body_fd_io(call_t *c, const uint64_t *a, int positioned, int writing)
{
    int ok;
    const cg_fd *e = fd_get(c->p, a[0], &ok);
    if (!ok)
        return HAND_OVER;
    if (e == NULL)
        return W_EBADF;
    uint64_t right = writing ? R_FD_WRITE : R_FD_READ;
    int r = need(e, positioned ? right | R_FD_SEEK : right);
    if (r != 0)
        return r;
    if (is_dir(e))
        return W_EISDIR;
    if (positioned) {
        if (!seekable(e))
            return W_ESPIPE;
        if (a[3] > I64_MAX)
            return W_EINVAL;
    }
    cg_mem m;
    if (!guest_memory(c->p, &m))
        return HAND_OVER;
    iovs_t io;
    uint64_t ret = positioned ? a[4] : a[3];
    r = load_iovecs(&m, a[1], a[2], &io);
    if (r != 0)
        return r;
    if (!in_bounds(&m, ret, 4))
        return W_EFAULT;
    if (!e->info.plain)
        return HAND_OVER; /* fed stdin, captured stdout, a socket object: Python's */
    uint64_t count;
    uint64_t offset = positioned ? a[3] : 0;
    r = writing ? write_from(c, &m, e, &io, positioned, offset, &count)
                : read_into(c, &m, e, &io, positioned, offset, &count);
    if (r != W_SUCCESS)
        return r;
    put_u32(&m, ret, (uint32_t)count);
    return W_SUCCESS;
}

/* fd._seekable: ESPIPE for a stream before any rights check, then the right, then EISDIR. */
static int seekable_entry(const cg_plugin *p, uint64_t fd, uint64_t right, const cg_fd **out)
{
    int ok;
    const cg_fd *e = fd_get(p, fd, &ok);
    if (!ok)
        return HAND_OVER;
    if (e == NULL)
        return W_EBADF;
    if (!is_dir(e) && !seekable(e))
        return W_ESPIPE;
    int r = need(e, right);
    if (r != 0)
        return r;
    if (is_dir(e))
        return W_EISDIR;
    *out = e;
    return W_SUCCESS;
}

/* fd_seek(fd, offset, whence, ret) */
static int body_fd_seek(call_t *c, const uint64_t *a)
{
    int64_t delta = (int64_t)a[1]; /* signed64 */
    uint64_t right = delta == 0 && a[2] == WHENCE_CUR ? R_FD_TELL : R_FD_SEEK;
    const cg_fd *e = NULL;
    int r = seekable_entry(c->p, a[0], right, &e);
    if (r != W_SUCCESS)
        return r;
    if (a[2] > 2)
        return W_EINVAL;
    cg_mem m;
    if (!guest_memory(c->p, &m))
        return HAND_OVER;
    if (!in_bounds(&m, a[3], 8))
        return W_EFAULT;
    if (!e->info.plain)
        return HAND_OVER;
    off_t at = lseek(e->info.host_fd, (off_t)delta, (int)a[2]);
    if (at < 0)
        return from_host(errno);
    put_u64(&m, a[3], (uint64_t)at);
    return W_SUCCESS;
}

/* fd_tell(fd, ret) */
static int body_fd_tell(call_t *c, const uint64_t *a)
{
    const cg_fd *e = NULL;
    int r = seekable_entry(c->p, a[0], R_FD_TELL, &e);
    if (r != W_SUCCESS)
        return r;
    cg_mem m;
    if (!guest_memory(c->p, &m))
        return HAND_OVER;
    if (!in_bounds(&m, a[1], 8))
        return W_EFAULT;
    if (!e->info.plain)
        return HAND_OVER;
    off_t at = lseek(e->info.host_fd, 0, SEEK_CUR);
    if (at < 0)
        return from_host(errno);
    put_u64(&m, a[1], (uint64_t)at);
    return W_SUCCESS;
}

static int run_body(call_t *c, const uint64_t *a)
{
    cg_plugin *p = c->p;
    switch (c->b->spec.body) {
    case CG_BODY_CLOCK_TIME_GET: return body_clock_time_get(p, a);
    case CG_BODY_CLOCK_RES_GET: return body_clock_res_get(p, a);
    case CG_BODY_RANDOM_GET: return body_random_get(p, a);
    case CG_BODY_ARGS_GET: return body_strings_get(p, a, 0);
    case CG_BODY_ARGS_SIZES_GET: return body_sizes_get(p, a, 0);
    case CG_BODY_ENVIRON_GET: return body_strings_get(p, a, 1);
    case CG_BODY_ENVIRON_SIZES_GET: return body_sizes_get(p, a, 1);
    case CG_BODY_FD_PRESTAT_GET: return body_fd_prestat_get(p, a);
    case CG_BODY_FD_PRESTAT_DIR_NAME: return body_fd_prestat_dir_name(p, a);
    case CG_BODY_FD_FDSTAT_GET: return body_fd_fdstat_get(p, a);
    case CG_BODY_FD_READ: return body_fd_io(c, a, 0, 0);
    case CG_BODY_FD_PREAD: return body_fd_io(c, a, 1, 0);
    case CG_BODY_FD_WRITE: return body_fd_io(c, a, 0, 1);
    case CG_BODY_FD_PWRITE: return body_fd_io(c, a, 1, 1);
    case CG_BODY_FD_SEEK: return body_fd_seek(c, a);
    case CG_BODY_FD_TELL: return body_fd_tell(c, a);
    default: return HAND_OVER;
    }
}

/* The arity each body reads (its WASI signature); a binding whose import has another
 * shape never runs the body. */
static const uint8_t body_params[CG_BODY_COUNT] = {
    [CG_BODY_CLOCK_RES_GET] = 2, [CG_BODY_CLOCK_TIME_GET] = 3, [CG_BODY_RANDOM_GET] = 2,
    [CG_BODY_ARGS_GET] = 2, [CG_BODY_ARGS_SIZES_GET] = 2, [CG_BODY_ENVIRON_GET] = 2,
    [CG_BODY_ENVIRON_SIZES_GET] = 2, [CG_BODY_FD_PRESTAT_GET] = 2,
    [CG_BODY_FD_PRESTAT_DIR_NAME] = 3, [CG_BODY_FD_FDSTAT_GET] = 2, [CG_BODY_FD_READ] = 4,
    [CG_BODY_FD_WRITE] = 4, [CG_BODY_FD_PREAD] = 5, [CG_BODY_FD_PWRITE] = 5,
    [CG_BODY_FD_SEEK] = 4, [CG_BODY_FD_TELL] = 2,
};

static const char *pending_message(uint32_t pending)
{
    switch (pending) {
    case CG_PENDING_KILL_PROCESS: return "callgate: PluginKilled in gate";
    case CG_PENDING_KILL_THREAD: return "callgate: GateViolation in gate";
    case CG_PENDING_DEADLINE: return "callgate: DeadlineExceeded in gate";
    case CG_PENDING_OUTPUT: return "callgate: OutputLimitExceeded in gate";
    default: return "callgate: the audit flush failed in gate";
    }
}

/* Answer ERRNO(n) in the gate's convention (spec.errno_results). */
static void deny(const cg_binding *b, uint64_t *slots, uint32_t n)
{
    switch (b->spec.deny) {
    case CG_DENY_FIRST:
        slots[0] = n;
        break;
    case CG_DENY_NEGATIVE:
        slots[0] = 0 - (uint64_t)n;
        for (uint32_t i = 1; i < b->spec.nresults; i++)
            slots[2 * i] = 0;
        break;
    default:
        break;
    }
}

void *cg_gate_entry(void *env, void *caller, uint64_t *slots, size_t nslots)
{
    cg_binding *b = env;
    cg_plugin *p = b->plugin;
    const cg_binding_spec *spec = &b->spec;
    if (!p->shared.alive || nslots < spec->nparams || nslots < spec->nresults)
        return hand_over(p, b, 0, caller, slots, nslots); /* Python says why */
    uint64_t a[CG_MAX_PARAMS];
    uint32_t i = 0;
    for (; i < spec->nparams; i++)
        a[i] = (spec->narrow >> i & 1) ? (slots[2 * i] & 0xffffffffu) : slots[2 * i];
    for (; i < 6; i++)
        a[i] = 0; /* a gate with fewer params shows zeros, as a syscall's unused args */
    uint32_t ret = run_filter(b, a); /* the first six args are seccomp_data.args */
    uint32_t action = ret & RET_ACTION_FULL;
    call_t c = {.p = p, .b = b, .pending = CG_PENDING_NONE};
    switch (action) {
    case RET_ALLOW: {
        if (spec->body == CG_BODY_NONE || spec->nparams != body_params[spec->body]
            || spec->nresults != 1)
            return hand_over(p, b, 1, caller, slots, nslots);
        int r = run_body(&c, a);
        if (r == HAND_OVER)
            return hand_over(p, b, 1, caller, slots, nslots);
        if (r == TRAPPED)
            return trap(p, c.pending, b, ret, pending_message(c.pending));
        p->counts[(size_t)spec->index * NCOUNTERS + C_ALLOW]++;
        slots[0] = (uint64_t)r;
        return NULL;
    }
    case RET_ERRNO: {
        if (spec->deny == CG_DENY_PYTHON || spec->nparams > CG_AUDIT_MAX_ARGS || !audit_ready(p))
            return hand_over(p, b, 0, caller, slots, nslots);
        p->counts[(size_t)spec->index * NCOUNTERS + C_ERRNO]++;
        if (audit_record(p, b, ret, a) != 0)
            return trap(p, CG_PENDING_FLUSH, b, ret, pending_message(CG_PENDING_FLUSH));
        uint32_t data = ret & RET_DATA;
        deny(b, slots, data < MAX_ERRNO ? data : MAX_ERRNO);
        return NULL;
    }
    case RET_LOG:
    case RET_TRAP:
    case RET_USER_NOTIF:
    case RET_TRACE:
        return hand_over(p, b, 0, caller, slots, nslots);
    default: { /* KILL_THREAD; KILL_PROCESS and, as in the kernel, any unknown action */
        if (spec->nparams > CG_AUDIT_MAX_ARGS || !audit_ready(p))
            return hand_over(p, b, 0, caller, slots, nslots);
        int thread = action == RET_KILL_THREAD;
        p->counts[(size_t)spec->index * NCOUNTERS + (thread ? C_KILL_THREAD : C_KILL_PROCESS)]++;
        if (audit_record(p, b, ret, a) != 0)
            return trap(p, CG_PENDING_FLUSH, b, ret, pending_message(CG_PENDING_FLUSH));
        uint32_t pending = thread ? CG_PENDING_KILL_THREAD : CG_PENDING_KILL_PROCESS;
        if (!thread)
            p->shared.alive = 0; /* no gate of this plugin runs again, in any frame */
        return trap(p, pending, b, ret, pending_message(pending));
    }
    }
}

/* -- test support ----------------------------------------------------------------------- */

static char test_trap;

uint8_t *cg_test_memory_data(const void *ctx, const void *memory)
{
    (void)memory;
    return ((const cg_test_memory *)ctx)->base;
}

size_t cg_test_memory_size(const void *ctx, const void *memory)
{
    (void)memory;
    return ((const cg_test_memory *)ctx)->size;
}

void *cg_test_trap_new(const char *message, size_t len)
{
    (void)message;
    (void)len;
    return &test_trap;
}

void *cg_test_trap_sentinel(void) { return &test_trap; }
