"""Strict mode, seccomp's first form (2005): read, write, exit and sigreturn, nothing else.

No program, no NO_NEW_PRIVS; any other syscall ends the process with SIGKILL (not SIGSYS:
strict mode predates filters). Python itself needs more than four syscalls, so each child
prepares everything first and makes its last calls through raw syscall().
"""

import os
import signal
from functools import partial

from callgate.arch import native_arch
from callgate.kernel.binding import SECCOMP_SET_MODE_STRICT, ffi, libc, raw_syscall
from callgate.kernel.child import run_in_child

X86_64 = native_arch()
SECCOMP = X86_64.number("seccomp")
PR_SET_SECCOMP, SECCOMP_MODE_STRICT = 22, 1  # prctl's option, and its name for the mode


def strict_then(last_call, enter_with):
    message = b"  in strict mode, write() still works\n"
    nr = X86_64.number(last_call)
    args = [ffi.cast("long", 3)] + [ffi.cast("long", 0)] * 5  # 3: the status of exit()
    # cffi builds a call interface on a function's first call, which may allocate memory
    # (mmap): make that first call now, while every syscall is still allowed.
    libc.syscall(X86_64.number("getpid"), *args)
    if enter_with == "seccomp":
        raw_syscall(SECCOMP, SECCOMP_SET_MODE_STRICT, 0, 0)
    else:
        zero = ffi.cast("unsigned long", 0)
        libc.prctl(PR_SET_SECCOMP, ffi.cast("unsigned long", SECCOMP_MODE_STRICT), zero, zero,
                   zero)
    os.write(1, message)  # write(2): allowed
    libc.syscall(nr, *args)  # the call under test
    os.write(1, b"  ...and so did the call\n")


for enter_with, last_call in (("seccomp", "exit"), ("seccomp", "exit_group"),
                              ("seccomp", "getpid"), ("prctl", "getpid")):
    print(f"{enter_with}(), then {last_call}():", flush=True)
    result = run_in_child(partial(strict_then, last_call, enter_with))
    if result.signal is not None:
        print(f"  killed by {signal.Signals(result.signal).name}")
    else:
        print(f"  exited with status {result.exit_code}")
