"""Inheritance: a filter follows the process into every child it forks and every program it
executes. There is no way to shed it, which is what makes it a sandbox.
"""

import errno
import subprocess

from callgate.arch import native_arch
from callgate.asm.assembler import assemble
from callgate.kernel.binding import install_filter, raw_syscall, set_no_new_privs
from callgate.kernel.child import run_in_child

UNAME = native_arch().number("uname")  # 63 on x86_64

NO_UNAME = assemble("""
    A = arch
    if (A != ARCH_X86_64) goto kill
    A = sys_number
    if (A == uname) goto deny
    return ALLOW
    deny:
    return ERRNO(EPERM)
    kill:
    return KILL_PROCESS
""", "x86_64")


def uname():
    ret, err = raw_syscall(UNAME, 0)  # a NULL buffer: EFAULT if allowed, EPERM if filtered
    return f"uname(NULL) = {ret}, {errno.errorcode[err]}"


def sandboxed():
    set_no_new_privs()
    install_filter(NO_UNAME)
    print("the filtered process:   ", uname(), flush=True)
    # fork: the child gets a copy of the filter (callgate's fork oracle forks again here).
    print("its forked child:       ", run_in_child(uname).unwrap(), flush=True)
    # execve: a new program, the same filter. uname(1) says what it got.
    done = subprocess.run(["uname", "-s"], capture_output=True, text=True)
    print("an executed program:    ", done.stderr.strip(), f"(exit {done.returncode})",
          flush=True)
    status = subprocess.run(["grep", "-E", "^(NoNewPrivs|Seccomp)", "/proc/self/status"],
                            capture_output=True, text=True)
    print("grep's own /proc/self/status:")
    for line in status.stdout.splitlines():
        print("   ", " ".join(line.split()))


print("unfiltered:             ", uname())
run_in_child(sandboxed).unwrap()
