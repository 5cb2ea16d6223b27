"""The build script of callgate's native core (cffi API mode), run by ``setup.py``.

``setup.py`` names it in ``cffi_modules``: at install time it becomes one extension
module, ``callgate.native._core``, compiled from one C file per concern in ``csrc/``
(``ticker.c`` today). A concern is its ``.c``, its ``.h`` and its declarations for cffi
below, a copy of the header's prototypes that the compiler checks against the header
(the generated module includes it), so the two cannot drift.

Hardening: ``-Wall -Wextra -Werror`` (a new compiler warning fails the build, and the
install then falls back to the pure-Python twins rather than ship code nobody read under
that warning), ``-fstack-protector-strong``, ``_FORTIFY_SOURCE=2``, full RELRO, a
non-executable stack. No callbacks are made at run time (``ffi.callback`` would need
executable memory); C calls function pointers it is handed, Python never is.

Run directly (``python callgate/native/_build.py``) it builds the module into this
directory, as ``pip install -e .`` does, for working on the C code without reinstalling.
"""

from __future__ import annotations

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")

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


def make_ffi(*, absolute: bool = False) -> FFI:
    """The module's FFI. Source paths are relative to the working directory (setup.py's,
    as setuptools wants them) unless ``absolute``."""
    def source(concern: str) -> str:
        path = os.path.join(CSRC, f"{concern}.c")
        return path if absolute else os.path.relpath(path)

    ffi = FFI()
    for decls in CONCERNS.values():
        ffi.cdef(decls)
    ffi.set_source(
        "callgate.native._core",
        "".join(f'#include "{concern}.h"\n' for concern in CONCERNS),
        sources=[source(concern) for concern in CONCERNS],
        include_dirs=[CSRC],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
    )
    return ffi


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
