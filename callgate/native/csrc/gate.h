/* callgate native core: the gate core.
 *
 * Per import of a plugin, a C callback that wasmtime calls through its unchecked
 * API (wasmtime_func_new_unchecked), with no GIL and no Python: it reads the
 * arguments, evaluates the gate's verified seccomp filter (the constant verdict if
 * the filter's answer does not depend on the arguments, else bpf.c's interpreter
 * over a seccomp_data record), and acts on the verdict:
 *
 *   ALLOW        run the gate's C body, if it has one and can decide the call here;
 *   ERRNO(n)     answer n in the gate's convention; buffer the audit record;
 *   KILL_*       count, buffer the record, remember why, and trap;
 *   anything else (LOG, TRAP, TRACE, USER_NOTIF, a Python body, a state C does not
 *                mirror, a call that would block): hand the call, untouched, to
 *                Python (the fallback), which decides it from scratch.
 *
 * The Python runtime (callgate/runtime/dispatch.py and the WASI gates) is the one
 * definition of every gate. C mirrors only the state it needs (the WASI fd table,
 * argv and environ, the output budget and deadline) and, whenever it cannot decide
 * exactly as Python would, it hands over *before* any side effect. Counters count
 * only the calls C finished; Python counts the calls it runs, and the runtime adds
 * the two. tests/native/ holds the two paths equal.
 *
 * C never links wasmtime: the functions of the libwasmtime that wasmtime-py loaded
 * are passed in as addresses (cg_host_api). C never calls Python except through the
 * two function pointers it is given (the fallback and the audit flush), which take
 * the GIL themselves. Every guest pointer is checked with overflow-free arithmetic
 * (len <= size && ptr <= size - len) before it is touched.
 *
 * Thread model: one plugin's calls are serialised by its Python lock, which the
 * calling thread holds while wasm (and so these callbacks) run; Python updates the
 * mirrors with that lock held or between calls.
 */
#ifndef CALLGATE_NATIVE_GATE_H
#define CALLGATE_NATIVE_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "bpf.h"

/* -- what the host hands in ---------------------------------------------------------- */

typedef void *(*cg_trap_new_fn)(const char *message, size_t len);
typedef uint8_t *(*cg_memory_data_fn)(const void *ctx, const void *memory);
typedef size_t (*cg_memory_size_fn)(const void *ctx, const void *memory);
/* A raw host callback: (env, caller, slots, slot count) -> trap or NULL. */
typedef void *(*cg_callback_fn)(void *env, void *caller, uint64_t *slots, size_t nslots);
/* Drain the plugin's audit buffer into its sink; 0, or non-zero when that raised (the
 * exception is then stashed on the plugin, and the call must trap). */
typedef int (*cg_flush_fn)(uint64_t plugin_id);
typedef void *(*cg_func_call_fn)(void *ctx, const void *func, uint64_t *slots, size_t nslots,
                                 void **trap_out);

typedef struct {
    cg_trap_new_fn trap_new;       /* wasmtime_trap_new */
    cg_memory_data_fn memory_data; /* wasmtime_memory_data */
    cg_memory_size_fn memory_size; /* wasmtime_memory_data_size */
    cg_func_call_fn func_call;     /* wasmtime_func_call_unchecked */
    cg_callback_fn fallback;       /* Python: env = binding id * 2 (+1: C found ALLOW) */
    cg_flush_fn flush;             /* Python: drain the audit buffer */
} cg_host_api;

/* -- a plugin ---------------------------------------------------------------------------- */

typedef struct cg_plugin cg_plugin;

/* Why the last trap C returned was a trap (cg_shared.pending). */
#define CG_PENDING_NONE 0u
#define CG_PENDING_KILL_PROCESS 1u /* the plugin is killed (alive = 0) */
#define CG_PENDING_KILL_THREAD 2u
#define CG_PENDING_DEADLINE 3u     /* Limits.timeout passed inside a gate */
#define CG_PENDING_OUTPUT 4u       /* Limits.output passed (output_used already counts it) */
#define CG_PENDING_FLUSH 5u        /* the audit flush raised; Python holds the exception */

/* The state Python reads and writes directly. */
typedef struct {
    uint32_t alive;           /* 0: killed or closed: every gate call goes to Python */
    uint32_t pending;         /* CG_PENDING_* */
    uint32_t pending_binding; /* the import whose call trapped */
    uint32_t pending_ret;     /* its filter result (KILL_*) */
    uint64_t output_used;     /* bytes charged to the outermost call (saturating) */
    uint64_t output_cap;      /* Limits.output, if output_capped */
    uint32_t output_capped;
    uint32_t has_deadline;
    double deadline;          /* CLOCK_MONOTONIC seconds, as Python's time.monotonic() */
    uint64_t audit_records;   /* records buffered, not yet flushed */
} cg_shared;

/* A plugin with nbindings imports; ctx is its store's wasmtime_context_t. Starts alive.
 * NULL when out of memory. Python holds one reference, each binding another. */
cg_plugin *cg_plugin_new(const cg_host_api *api, uint64_t plugin_id, uint32_t nbindings,
                         void *ctx);
/* Drop Python's reference (the plugin is freed with its last binding). */
void cg_plugin_release(cg_plugin *p);
cg_shared *cg_plugin_shared(cg_plugin *p);
/* nbindings rows of 8 counters (allow log errno trap user_notif trace kill_thread
 * kill_process), counting the calls C finished. */
const uint64_t *cg_plugin_counts(const cg_plugin *p);
/* The guest memory (a wasmtime_memory_t of size bytes, at most 32), or NULL: none known
 * yet, so gates that need memory go to Python. */
int cg_plugin_set_memory(cg_plugin *p, const void *memory, size_t size);

/* Call an export (wasmtime_func_call_unchecked) as the outermost call (depth 0) or a
 * nested one. An outermost call starts with output_used = 0 and ends by flushing the
 * audit buffer. 0: done; 1: wasmtime returned an error or a trap (in *err_out and
 * *trap_out, each a void *[1]: the caller's cdata is typed by wasmtime-py's bindings);
 * 2: the call returned but its final audit flush raised. */
int cg_call(cg_plugin *p, uint32_t depth, const void *func, uint64_t *slots, size_t nslots,
            void *err_out, void *trap_out);

/* -- a binding (one import) ------------------------------------------------------------- */

/* The C body a binding runs on ALLOW (CG_BODY_NONE: Python's). */
enum {
    CG_BODY_NONE = 0,
    CG_BODY_CLOCK_RES_GET, CG_BODY_CLOCK_TIME_GET, CG_BODY_RANDOM_GET,
    CG_BODY_ARGS_GET, CG_BODY_ARGS_SIZES_GET, CG_BODY_ENVIRON_GET, CG_BODY_ENVIRON_SIZES_GET,
    CG_BODY_FD_PRESTAT_GET, CG_BODY_FD_PRESTAT_DIR_NAME, CG_BODY_FD_FDSTAT_GET,
    CG_BODY_FD_READ, CG_BODY_FD_WRITE, CG_BODY_FD_PREAD, CG_BODY_FD_PWRITE,
    CG_BODY_FD_SEEK, CG_BODY_FD_TELL,
    CG_BODY_COUNT
};

/* How ERRNO(n) is answered: results (n), results (-n, 0, ...), no results, or by Python
 * (a convention C does not know, e.g. an app gate that raises GateDenied). */
enum { CG_DENY_PYTHON = 0, CG_DENY_FIRST, CG_DENY_NEGATIVE, CG_DENY_NOTHING };

#define CG_MAX_PARAMS 64u      /* a gate with more params is not bound natively */
#define CG_AUDIT_MAX_ARGS 16u  /* a gate with more params is denied by Python */

typedef struct {
    uint32_t index;        /* the import's index: seccomp_data.instruction_pointer, counter row */
    int32_t nr;            /* gate number */
    uint32_t arch;         /* the gate arch */
    uint32_t nparams;
    uint32_t nresults;
    uint64_t narrow;       /* bit i: param i is i32/f32, read as its low 32 bits */
    uint32_t has_constant; /* the filter's result does not depend on the args: constant */
    uint32_t constant;
    uint32_t body;         /* CG_BODY_* */
    uint32_t deny;         /* CG_DENY_* */
    uint64_t binding_id;   /* the fallback's env is binding_id * 2 (+1 after ALLOW) */
} cg_binding_spec;

typedef struct cg_binding cg_binding;

/* A binding of p; prog (copied) is the gate's filter, checked with cg_bpf_check (a
 * constant binding may pass none). NULL: out of memory, a refused program, or a spec C
 * cannot serve (too many params, an unknown body): bind that import in Python. */
cg_binding *cg_binding_new(cg_plugin *p, const cg_binding_spec *spec, const cg_insn *prog,
                           uint32_t prog_len);
/* wasmtime's finalizer for the env: frees the binding (and drops its plugin reference). */
void cg_binding_free(void *binding);
/* The callback wasmtime calls (env = a cg_binding). */
void *cg_gate_entry(void *env, void *caller, uint64_t *slots, size_t nslots);
/* The binding's filter result for these args (tests: C against the reference). */
uint32_t cg_binding_filter(const cg_binding *b, const uint64_t *args6);

/* -- the WASI mirror ---------------------------------------------------------------------- */

/* One fd of the guest's table, as the Python FdTable has it. */
typedef struct {
    uint8_t filetype;
    uint8_t plain;        /* a host fd and nothing else (no socket object, buffer, feed) */
    uint8_t exotic;       /* a field C cannot represent: every body hands this fd to Python */
    uint8_t name_state;   /* 0: not a preopen; 1: preopen, name given; 2: preopen, Python's */
    uint16_t flags;       /* fdflags */
    int32_t host_fd;      /* -1: none */
    uint64_t allowed;     /* the rights its calls are checked against (FdEntry.allowed) */
    uint64_t rights_base; /* what fd_fdstat_get reports (wasmtime's values) */
    uint64_t rights_inheriting;
} cg_fd_info;

/* Mirror a WASI state of fd numbers < capacity (its max_fds). 0 or an errno. */
int cg_wasi_attach(cg_plugin *p, uint32_t capacity);
/* argv (which 0) or environ (1): count strings, each NUL-terminated, lens[i] bytes of blob. */
int cg_wasi_set_strings(cg_plugin *p, uint32_t which, const uint8_t *blob, uint64_t blob_len,
                        const uint64_t *lens, uint32_t count);
/* fd now holds info (and, if name_state is 1, the preopen name). 0 or an errno; an fd
 * C cannot hold disables the mirror (every WASI body then hands over). */
int cg_wasi_set_fd(cg_plugin *p, uint32_t fd, const cg_fd_info *info, const uint8_t *name,
                   uint32_t name_len);
void cg_wasi_clear_fd(cg_plugin *p, uint32_t fd);
/* From now on every WASI body hands its calls to Python. */
void cg_wasi_disable(cg_plugin *p);

/* Host errno -> WASI errno (wasi_errno.from_host), n entries; missing ones are dflt. */
void cg_gate_set_errno_map(const uint16_t *map, uint32_t n, uint16_t dflt);

/* -- the audit buffer ----------------------------------------------------------------- */

/* One buffered record, as read back. */
typedef struct {
    uint64_t t_ns;   /* CLOCK_MONOTONIC at the call */
    uint32_t binding;
    uint32_t ret;    /* the filter result */
    uint32_t nargs;
    uint64_t args[CG_AUDIT_MAX_ARGS];
} cg_audit_record;

/* Records are stored back to back; positions are word offsets. The record at pos into
 * *out; returns the next position, or 0 past the end. */
uint64_t cg_audit_read(const cg_plugin *p, uint64_t pos, cg_audit_record *out);
uint64_t cg_audit_end(const cg_plugin *p);
void cg_audit_clear(cg_plugin *p);
/* Append a record as a denied call does (tests). 0, or -1 when the buffer is full. */
int cg_audit_push(cg_plugin *p, uint64_t t_ns, uint32_t binding, uint32_t ret,
                  const uint64_t *args, uint32_t nargs);

/* The audit sink's rate limit over a run of buffered records: callgate/runtime/audit.py
 * (AuditSink.emit_many and its Python twin _scan) decides the same. From position pos,
 * each record is, in order: stopped at if its moment reaches next_summary (summaries are
 * due); else admitted (a KILL_PROCESS action, or a token from the bucket): stopped at;
 * else held, counted in its (binding, ret) group. */
#define CG_SCAN_GROUPS 32u
enum { CG_SCAN_END = 0, CG_SCAN_SUMMARY, CG_SCAN_ADMITTED, CG_SCAN_FULL };

typedef struct {
    uint64_t pos;           /* in: where to start; out: the record stopped at */
    uint64_t next;          /* out: the position after it */
    double rate;            /* records a second */
    double burst;
    double interval;        /* SUMMARY_INTERVAL */
    int32_t has_bucket;     /* in/out */
    int32_t has_held;       /* in/out: the plugin has records held for a summary */
    double tokens;          /* in/out */
    double last;            /* in/out */
    double next_summary;    /* in/out */
    double held_since;      /* out, when this scan made has_held 1 */
    double moment;          /* out: the moment of the record stopped at */
    uint32_t stop;          /* out: CG_SCAN_* */
    uint32_t ngroups;       /* out */
    uint32_t group_binding[CG_SCAN_GROUPS];
    uint32_t group_ret[CG_SCAN_GROUPS];
    uint64_t group_count[CG_SCAN_GROUPS];
} cg_audit_scan;

void cg_audit_scan_run(const cg_plugin *p, cg_audit_scan *s);

/* -- for the in-process test harness -------------------------------------------------- */

/* A memory the harness owns: pass a cg_test_memory * as the plugin's ctx, these as
 * memory_data / memory_size, and cg_test_trap_new as trap_new (it returns a static
 * sentinel, cg_test_trap_sentinel()). */
typedef struct {
    uint8_t *base;
    uint64_t size;
} cg_test_memory;
uint8_t *cg_test_memory_data(const void *ctx, const void *memory);
size_t cg_test_memory_size(const void *ctx, const void *memory);
void *cg_test_trap_new(const char *message, size_t len);
void *cg_test_trap_sentinel(void);

#endif
