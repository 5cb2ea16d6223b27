"""TSYNC: a filter binds the thread that installs it - and, with TSYNC, every thread.

A thread is started first, then the main thread installs a filter that denies getppid.
Without SECCOMP_FILTER_FLAG_TSYNC the older thread stays unfiltered; with it, the kernel
moves every thread of the process onto the new filter at once, or fails if it cannot.
"""

import errno
import threading
from functools import partial

from callgate.arch import native_arch
from callgate.asm.assembler import assemble
from callgate.kernel.binding import (
    SECCOMP_FILTER_FLAG_TSYNC,
    SeccompInstallError,
    install_filter,
    raw_syscall,
    set_no_new_privs,
)
from callgate.kernel.child import run_in_child

GETPPID = native_arch().number("getppid")
NO_GETPPID = assemble("""
    A = arch
    if (A != ARCH_X86_64) goto kill
    A = sys_number
    if (A == getppid) goto deny
    return ALLOW
    deny:
    return ERRNO(EPERM)
    kill:
    return KILL_PROCESS
""", "x86_64")


def getppid():
    ret, err = raw_syscall(GETPPID)
    return "a pid" if ret > 0 else errno.errorcode[err]


def seccomp_mode(tid):
    with open(f"/proc/self/task/{tid}/status") as status:
        return next(line.split()[1] for line in status if line.startswith("Seccomp:"))


def demo(flags, thread_has_own_filter=False):
    set_no_new_privs()
    started, go_on = threading.Event(), threading.Event()
    seen = {}

    def older_thread():
        seen["tid"] = threading.get_native_id()
        if thread_has_own_filter:
            install_filter(NO_GETPPID)  # the same program, but its own filter
        started.set()
        go_on.wait()
        seen["getppid"] = getppid()

    thread = threading.Thread(target=older_thread)
    thread.start()
    started.wait()
    try:
        install_filter(NO_GETPPID, flags)
        installed = "0"
    except SeccompInstallError as exc:  # the kernel returned the tid it could not move
        installed = "the older thread's tid" if exc.tid == seen["tid"] else f"failed: {exc}"
    main_mode = seccomp_mode(threading.get_native_id())
    thread_mode = seccomp_mode(seen["tid"])
    go_on.set()
    thread.join()
    return (f"seccomp() = {installed}\n"
            f"  main thread:   getppid() = {getppid():<6} Seccomp: {main_mode}\n"
            f"  older thread:  getppid() = {seen['getppid']:<6} Seccomp: {thread_mode}")


print("no flags:", run_in_child(partial(demo, 0)).unwrap())
print("TSYNC:", run_in_child(partial(demo, SECCOMP_FILTER_FLAG_TSYNC)).unwrap())
print("TSYNC, the older thread has a filter of its own:",
      run_in_child(partial(demo, SECCOMP_FILTER_FLAG_TSYNC, True)).unwrap())
