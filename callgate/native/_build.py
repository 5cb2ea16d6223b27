"""The build script of callgate's native core (cffi API mode), run by ``setup.py``.

``setup.py`` names it in ``cffi_modules``: at install time it becomes one extension
module, ``callgate.native._core``, compiled from one C file per concern in ``csrc/``
(``ticker.c``, ``bpf.c``, ``gate.c``). A concern is its ``.c``, its ``.h`` and its
declarations for cffi below, a copy of the header's prototypes that the compiler checks
against the header (the generated module includes it), so the two cannot drift.

Hardening: ``-Wall -Wextra -Werror`` (a new compiler warning fails the build, and the
install then falls back to the pure-Python twins rather than ship code nobody read under
that warning), ``-fstack-protector-strong``, ``_FORTIFY_SOURCE=2``, full RELRO, a
non-executable stack. No callbacks are made at run time (``ffi.callback`` would need
executable memory); C calls function pointers it is handed, Python never is.

Run directly (``python callgate/native/_build.py``) it builds the module into this
directory, as ``pip install -e .`` does, for working on the C code without reinstalling.
"""

from __future__ import annotations

import importlib.util
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")


def source_fingerprint(csrc: str) -> int | None:
    """fingerprint.source_fingerprint, loaded by path: setup.py runs this file outside
    the package, where ``callgate.native`` cannot be imported."""
    spec = importlib.util.spec_from_file_location("_cg_fingerprint",
                                                  os.path.join(HERE, "fingerprint.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fingerprint: int | None = module.source_fingerprint(csrc)
    return fingerprint

# Concern -> its declarations (the prototypes of csrc/<concern>.h that Python calls).
CONCERNS: dict[str, str] = {
    "ticker": """
        typedef void (*cg_tick_fn)(void *target);
        uint64_t cg_ticks_due(uint64_t origin_ns, uint64_t now_ns, uint64_t period_ns,
                              uint64_t done);
        uint64_t cg_next_tick_ns(uint64_t origin_ns, uint64_t period_ns, uint64_t done);
        typedef struct cg_ticker cg_ticker;
        typedef struct {
            uint64_t ticks;
            int running;
            int thread_started;
        } cg_ticker_state;
        cg_ticker *cg_ticker_new(cg_tick_fn tick, void *target, cg_tick_fn release,
                                 uint64_t period_ns, const char *name);
        int cg_ticker_run(cg_ticker *t, int running);
        void cg_ticker_read(cg_ticker *t, cg_ticker_state *out);
        void cg_ticker_free(cg_ticker *t);
        void cg_count_tick(void *counter);
        uint64_t cg_count_read(const uint64_t *counter);
    """,
    "bpf": """
        typedef struct { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; } cg_insn;
        typedef struct {
            int32_t nr;
            uint32_t arch;
            uint64_t instruction_pointer;
            uint64_t args[6];
        } cg_seccomp_data;
        #define CG_BPF_INVALID ...
        #define CG_BPF_MAXINSNS ...
        uint32_t cg_bpf_check(const cg_insn *prog, uint32_t len);
        uint32_t cg_bpf_run(const cg_insn *prog, uint32_t len, const cg_seccomp_data *d);
    """,
    "gate": """
        typedef void *(*cg_trap_new_fn)(const char *message, size_t len);
        typedef uint8_t *(*cg_memory_data_fn)(const void *ctx, const void *memory);
        typedef size_t (*cg_memory_size_fn)(const void *ctx, const void *memory);
        typedef void *(*cg_callback_fn)(void *env, void *caller, uint64_t *slots, size_t nslots);
        typedef int (*cg_flush_fn)(uint64_t plugin_id);
        typedef void *(*cg_func_call_fn)(void *ctx, const void *func, uint64_t *slots,
                                         size_t nslots, void **trap_out);
        typedef struct {
            cg_trap_new_fn trap_new;
            cg_memory_data_fn memory_data;
            cg_memory_size_fn memory_size;
            cg_func_call_fn func_call;
            cg_callback_fn fallback;
            cg_flush_fn flush;
        } cg_host_api;
        typedef struct cg_plugin cg_plugin;
        #define CG_PENDING_NONE ...
        #define CG_PENDING_KILL_PROCESS ...
        #define CG_PENDING_KILL_THREAD ...
        #define CG_PENDING_DEADLINE ...
        #define CG_PENDING_OUTPUT ...
        #define CG_PENDING_FLUSH ...
        typedef struct {
            uint32_t alive;
            uint32_t pending;
            uint32_t pending_binding;
            uint32_t pending_ret;
            uint64_t output_used;
            uint64_t output_cap;
            uint32_t output_capped;
            uint32_t has_deadline;
            double deadline;
            uint64_t audit_records;
        } cg_shared;
        cg_plugin *cg_plugin_new(const cg_host_api *api, uint64_t plugin_id, uint32_t nbindings,
                                 void *ctx);
        void cg_plugin_release(cg_plugin *p);
        cg_shared *cg_plugin_shared(cg_plugin *p);
        const uint64_t *cg_plugin_counts(const cg_plugin *p);
        int cg_plugin_set_memory(cg_plugin *p, const void *memory, size_t size);
        int cg_call(cg_plugin *p, uint32_t depth, const void *func, uint64_t *slots,
                    size_t nslots, void *err_out, void *trap_out);
        static const int CG_BODY_NONE;
        static const int CG_BODY_CLOCK_RES_GET;
        static const int CG_BODY_CLOCK_TIME_GET;
        static const int CG_BODY_RANDOM_GET;
        static const int CG_BODY_ARGS_GET;
        static const int CG_BODY_ARGS_SIZES_GET;
        static const int CG_BODY_ENVIRON_GET;
        static const int CG_BODY_ENVIRON_SIZES_GET;
        static const int CG_BODY_FD_PRESTAT_GET;
        static const int CG_BODY_FD_PRESTAT_DIR_NAME;
        static const int CG_BODY_FD_FDSTAT_GET;
        static const int CG_BODY_FD_READ;
        static const int CG_BODY_FD_WRITE;
        static const int CG_BODY_FD_PREAD;
        static const int CG_BODY_FD_PWRITE;
        static const int CG_BODY_FD_SEEK;
        static const int CG_BODY_FD_TELL;
        static const int CG_BODY_COUNT;
        static const int CG_DENY_PYTHON;
        static const int CG_DENY_FIRST;
        static const int CG_DENY_NEGATIVE;
        static const int CG_DENY_NOTHING;
        #define CG_MAX_PARAMS ...
        #define CG_AUDIT_MAX_ARGS ...
        typedef struct {
            uint32_t index;
            int32_t nr;
            uint32_t arch;
            uint32_t nparams;
            uint32_t nresults;
            uint64_t narrow;
            uint32_t has_constant;
            uint32_t constant;
            uint32_t body;
            uint32_t deny;
            uint64_t binding_id;
        } cg_binding_spec;
        typedef struct cg_binding cg_binding;
        cg_binding *cg_binding_new(cg_plugin *p, const cg_binding_spec *spec,
                                   const cg_insn *prog, uint32_t prog_len);
        void cg_binding_free(void *binding);
        void *cg_gate_entry(void *env, void *caller, uint64_t *slots, size_t nslots);
        uint32_t cg_binding_filter(const cg_binding *b, const uint64_t *args6);
        typedef struct {
            uint8_t filetype;
            uint8_t plain;
            uint8_t exotic;
            uint8_t name_state;
            uint16_t flags;
            int32_t host_fd;
            uint64_t allowed;
            uint64_t rights_base;
            uint64_t rights_inheriting;
        } cg_fd_info;
        int cg_wasi_attach(cg_plugin *p, uint32_t capacity);
        int cg_wasi_set_strings(cg_plugin *p, uint32_t which, const uint8_t *blob,
                                uint64_t blob_len, const uint64_t *lens, uint32_t count);
        int cg_wasi_set_fd(cg_plugin *p, uint32_t fd, const cg_fd_info *info,
                           const uint8_t *name, uint32_t name_len);
        void cg_wasi_clear_fd(cg_plugin *p, uint32_t fd);
        void cg_wasi_disable(cg_plugin *p);
        void cg_gate_set_errno_map(const uint16_t *map, uint32_t n, uint16_t dflt);
        typedef struct {
            uint64_t t_ns;
            uint32_t binding;
            uint32_t ret;
            uint32_t nargs;
            uint64_t args[16];
        } cg_audit_record;
        uint64_t cg_audit_read(const cg_plugin *p, uint64_t pos, cg_audit_record *out);
        uint64_t cg_audit_end(const cg_plugin *p);
        void cg_audit_clear(cg_plugin *p);
        int cg_audit_push(cg_plugin *p, uint64_t t_ns, uint32_t binding, uint32_t ret,
                          const uint64_t *args, uint32_t nargs);
        #define CG_SCAN_GROUPS ...
        static const int CG_SCAN_END;
        static const int CG_SCAN_SUMMARY;
        static const int CG_SCAN_ADMITTED;
        static const int CG_SCAN_FULL;
        typedef struct {
            uint64_t pos;
            uint64_t next;
            double rate;
            double burst;
            double interval;
            int32_t has_bucket;
            int32_t has_held;
            double tokens;
            double last;
            double next_summary;
            double held_since;
            double moment;
            uint32_t stop;
            uint32_t ngroups;
            uint32_t group_binding[32];
            uint32_t group_ret[32];
            uint64_t group_count[32];
        } cg_audit_scan;
        void cg_audit_scan_run(const cg_plugin *p, cg_audit_scan *s);
        typedef struct { uint8_t *base; uint64_t size; } cg_test_memory;
        uint8_t *cg_test_memory_data(const void *ctx, const void *memory);
        size_t cg_test_memory_size(const void *ctx, const void *memory);
        void *cg_test_trap_new(const char *message, size_t len);
        void *cg_test_trap_sentinel(void);
    """,
}

COMPILE_ARGS = [
    "-std=gnu11",
    "-O2",  # _FORTIFY_SOURCE needs optimisation; CFLAGS from the environment come first
    "-pthread",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fstack-protector-strong",
    "-U_FORTIFY_SOURCE",  # a distribution's CFLAGS may define it already
    "-D_FORTIFY_SOURCE=2",
]
LINK_ARGS = ["-pthread", "-Wl,-z,relro", "-Wl,-z,now", "-Wl,-z,noexecstack"]


def make_ffi(*, absolute: bool = False, csrc: str = CSRC, extra_compile: list[str] | None = None,
             extra_link: list[str] | None = None) -> FFI:
    """The module's FFI. Source paths are relative to the working directory (setup.py's,
    as setuptools wants them) unless ``absolute``; ``csrc`` and the extra flags make
    variants (tests: a sanitized build, a build of mutated sources)."""
    def source(concern: str) -> str:
        path = os.path.join(csrc, f"{concern}.c")
        return path if absolute else os.path.relpath(path)

    ffi = FFI()
    for decls in CONCERNS.values():
        ffi.cdef(decls)
    ffi.cdef("#define CG_SOURCE_FINGERPRINT ...")
    ffi.set_source(
        "callgate.native._core",
        f"#define CG_SOURCE_FINGERPRINT {source_fingerprint(csrc)}ULL\n"
        + "".join(f'#include "{concern}.h"\n' for concern in CONCERNS),
        sources=[source(concern) for concern in CONCERNS],
        include_dirs=[csrc],
        extra_compile_args=COMPILE_ARGS + (extra_compile or []),
        extra_link_args=LINK_ARGS + (extra_link or []),
    )
    return ffi


def build_variant(tmpdir: str, *, csrc: str = CSRC, extra_compile: list[str] | None = None,
                  extra_link: list[str] | None = None) -> str:
    """Build a variant of the core in ``tmpdir``; the path of its extension module, to
    load with ``CALLGATE_NATIVE_CORE`` (the installed core is left alone)."""
    built: str = make_ffi(absolute=True, csrc=csrc, extra_compile=extra_compile,
                          extra_link=extra_link).compile(tmpdir=tmpdir)
    return built


ffibuilder = make_ffi()

if __name__ == "__main__":
    import glob
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        built = make_ffi(absolute=True).compile(tmpdir=tmp, verbose=True)
        target = os.path.join(HERE, os.path.basename(built))
        # Replace, never overwrite in place: a running process may have the old one mapped.
        shutil.copy(built, target + ".new")
        os.replace(target + ".new", target)
    for other in glob.glob(os.path.join(HERE, "_core.*.so")):
        if other != target:  # e.g. pip's _core.abi3.so, which would be stale now
            os.unlink(other)
    print(f"built {target}")
