"""The process lab 8 locks down: ``python -m callgate.teach.labs.lockdown_harness FILE TRY``.

It loads lines.wasm (compiling needs what a locked process never gets again), imports the
student's FILE and calls its ``lock(plugin)``, runs the guest, then tries to start a
program with TRY (``execve`` or ``execveat``). Every step says how it went on stdout, one
``harness:`` line each, for the checker in the parent; the kernel's answer to the exec is
the process's own fate (killed by SIGSYS), or its errno, or the program's output.

It is a process of its own because a filter can never be removed: nothing else runs in
it, and it ends with ``os._exit``.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import resource
import sys

from callgate.arch import native_arch
from callgate.gates.spec import GuestExit
from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.kernel.binding import ffi, raw_syscall
from callgate.runtime.plugin import Plugin
from callgate.teach.labs.runner import guest_path

#: The gate policy lines.wasm runs under: what it needs to print.
POLICY = """
[gates]
default = "errno(ENOSYS)"

[[gates.rules]]
names = ["args_sizes_get", "args_get", "proc_exit"]
action = "allow"

[[gates.rules]]
names = ["fd_fdstat_get", "fd_write"]
action = "allow"
args = [{ index = 0, op = "ge", value = 1, width = 32 },
        { index = 0, op = "le", value = 2, width = 32 }]
"""
PROGRAM = b"/bin/echo"
RAN = "harness: the new program ran"
AT_FDCWD = -100


def say(text: str) -> None:
    os.write(1, f"harness: {text}\n".encode())


def exec_with(how: str) -> None:
    """Try to replace this process with /bin/echo; return only if the kernel refused."""
    argv = [b"echo", RAN.encode()]
    if how == "execve":
        try:
            os.execv(PROGRAM, argv)
        except OSError as exc:
            say(f"execve failed: {errno.errorcode.get(exc.errno or 0, exc.errno)}")
        return
    path = ffi.new("char[]", PROGRAM)
    args = [ffi.new("char[]", a) for a in argv]
    argp = ffi.new("char *[]", [*args, ffi.NULL])
    envp = ffi.new("char *[]", [ffi.NULL])
    _ret, err = raw_syscall(native_arch().number("execveat"), AT_FDCWD, path, argp, envp, 0)
    say(f"execveat failed: {errno.errorcode.get(err, err)}")


def main(argv: list[str]) -> None:
    handin, how = argv
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a kill must not leave a core file
    spec = importlib.util.spec_from_file_location("lab08_handin", handin)
    if spec is None or spec.loader is None:
        say(f"cannot import {handin}: not a Python file")
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        say(f"importing it raised {type(exc).__name__}: {exc}")
        return
    lock = getattr(module, "lock", None)
    if not callable(lock):
        say("it defines no lock(plugin) function")
        return
    native_arch()  # look the syscall table up now: reading it needs a file
    config = WasiConfig(args=["lines", "2"], stdout="inherit", stderr="inherit")
    plugin = Plugin(guest_path("lines"), policy=POLICY, providers=[WasiProvider(config)])
    say("loaded")
    try:
        lock(plugin)
    except Exception as exc:
        say(f"lock(plugin) raised {type(exc).__name__}: {exc}")
        return
    say("locked")
    try:
        plugin.call_int("_start")
        status = 0
    except GuestExit as exc:
        status = exc.code
    except Exception as exc:
        say(f"the guest failed after lock: {type(exc).__name__}: {exc}")
        return
    say(f"the guest exited with status {status}")
    exec_with(how)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    finally:
        os._exit(0)  # an interpreter shutdown makes syscalls a locked process may not
