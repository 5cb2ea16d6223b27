"""callgate's numbers beside Linux's: the same ideas in two numberings.

Nothing here installs a filter, and every number is looked up in callgate's tables, none
typed in.
"""

import errno
import signal

from callgate.arch import AUDIT_ARCH_CALLGATE, get_arch
from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.bpf.actions import SECCOMP_RET_ERRNO

LINUX = get_arch("x86_64")  # the kernel's syscall table for x86_64
GATES = get_arch("callgate")  # WASI preview1 functions in witx order, then app gates

rows = [("", "Linux, x86_64", "callgate's gate layer"),
        ("seccomp_data.arch", f"AUDIT_ARCH_X86_64 = {LINUX.audit_arch:#x}",
         f"ARCH_CALLGATE = {AUDIT_ARCH_CALLGATE:#x}")]
for syscall, gate in (("read", "fd_read"), ("write", "fd_write"), ("openat", "path_open"),
                      ("exit_group", "proc_exit"), ("getrandom", "random_get")):
    rows.append(("seccomp_data.nr", f"{syscall} = {LINUX.number(syscall)}",
                 f"{gate} = {GATES.number(gate)}"))
for name in ("ENOSYS", "EPERM", "EACCES", "EBADF"):
    rows.append(("errno", f"{name} = {getattr(errno, name)}", f"{name} = {WASI_ERRNO[name]}"))
rows.append(("return ERRNO(EPERM)", f"{SECCOMP_RET_ERRNO | errno.EPERM:#010x}",
             f"{SECCOMP_RET_ERRNO | WASI_ERRNO['EPERM']:#010x}"))
rows.append(("exit status if killed", f"128 + SIGSYS = {128 + signal.SIGSYS}",
             f"callgate run: {128 + signal.SIGSYS}"))

widths = [max(len(row[i]) for row in rows) for i in range(2)]
for first, linux, gate in rows:
    print(f"{first:<{widths[0]}}  {linux:<{widths[1]}}  {gate}")
