"""wasm traps need wasmtime's signal handlers; a library that replaces them kills the host.

Ray's driver installs crash handlers for SIGILL/SIGSEGV/SIGBUS/SIGFPE in ``ray.init`` and
resets them in ``ray.shutdown``; the next wasm trap (a stack overflow is a ud2, SIGILL) then
took the default action and the whole test suite died with "Illegal instruction".
``TrapHandlers.kept()`` (used around Ray by the batch engine) puts wasmtime's back.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import signal, sys
    from callgate import Plugin, GuestTrap
    from callgate.runtime.backend import TrapHandlers
    import wasmtime
    module = wasmtime.wat2wasm('(module (func (export "boom") unreachable))')

    def trap():
        with Plugin(bytes(module)) as p:
            try:
                p.call_int("boom")
            except GuestTrap:
                return
        raise AssertionError("no trap")

    trap()  # wasmtime's handlers are installed now
    def like_a_library():  # what ray.init/ray.shutdown do to these signals
        for sig in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE):
            signal.signal(sig, signal.SIG_DFL)
    if sys.argv[1] == "kept":
        with TrapHandlers.kept():
            like_a_library()
    else:
        like_a_library()
    trap()
    print("alive")
""")


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          timeout=120)


def test_traps_still_reach_wasmtime_after_a_library_replaced_the_handlers() -> None:
    done = run("kept")
    assert (done.returncode, done.stdout) == (0, "alive\n"), done.stderr


def test_without_them_a_trap_kills_the_process() -> None:
    done = run("replaced")  # the hazard itself, so the test above can fail
    assert done.returncode == -signal.SIGILL and "alive" not in done.stdout
