"""A filter built by hand as struct sock_filter[], handed to the kernel in a struct sock_fprog.

The same program goes in twice, each time in a fresh forked child (a filter can never be
removed): once through seccomp(2), once through prctl(2).
"""

from callgate.arch import native_arch
from callgate.kernel.binding import ffi, libc, raw_syscall, set_no_new_privs
from callgate.kernel.child import run_in_child

X86_64 = native_arch()
SECCOMP = X86_64.number("seccomp")  # 317: the seccomp(2) syscall
GETPPID = X86_64.number("getppid")  # 110

# <linux/filter.h> and <linux/seccomp.h>, as a C program would write them.
BPF_LD_W_ABS = 0x20  # A = the 32-bit word at offset k of struct seccomp_data
BPF_JEQ_K = 0x15  # if (A == k) skip jt instructions, else skip jf
BPF_RET_K = 0x06  # return k
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x50000, 0x7FFF0000
AUDIT_ARCH_X86_64 = 0xC000003E
EPERM = 1

PROGRAM = [  # (code, jt, jf, k): one struct sock_filter each
    (BPF_LD_W_ABS, 0, 0, 4),  # A = seccomp_data.arch (offset 4)
    (BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),  # x86_64? skip the kill
    (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
    (BPF_LD_W_ABS, 0, 0, 0),  # A = seccomp_data.nr (offset 0)
    (BPF_JEQ_K, 0, 1, GETPPID),  # getppid? fall through to the ERRNO
    (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
    (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
]


def sock_fprog():
    """struct sock_fprog { unsigned short len; struct sock_filter *filter; }"""
    filters = ffi.new("struct sock_filter[]", len(PROGRAM))
    for slot, (code, jt, jf, k) in zip(filters, PROGRAM, strict=True):
        slot.code, slot.jt, slot.jf, slot.k = code, jt, jf, k
    fprog = ffi.new("struct sock_fprog *", {"len": len(PROGRAM), "filter": filters})
    return fprog, filters  # keep `filters` alive as long as fprog points at it


def getppid():
    ret, err = raw_syscall(GETPPID)
    return "a pid" if ret > 0 else f"-1, errno {err}"


def with_seccomp():
    fprog, _keep = sock_fprog()
    set_no_new_privs()
    SECCOMP_SET_MODE_FILTER = 1  # seccomp(2)'s operation
    ret, _errno = raw_syscall(SECCOMP, SECCOMP_SET_MODE_FILTER, 0, fprog)  # 0: no flags
    return f"seccomp() = {ret}; getppid() = {getppid()}"


def with_prctl():
    fprog, _keep = sock_fprog()
    set_no_new_privs()
    PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2  # prctl(2)'s option and mode
    zero = ffi.cast("unsigned long", 0)
    ret = libc.prctl(PR_SET_SECCOMP, ffi.cast("unsigned long", SECCOMP_MODE_FILTER),
                     fprog, zero, zero)
    return f"prctl() = {ret}; getppid() = {getppid()}"


print(f"sizeof(struct sock_filter) = {ffi.sizeof('struct sock_filter')}, "
      f"sizeof(struct sock_fprog) = {ffi.sizeof('struct sock_fprog')}, "
      f"filter pointer at offset {ffi.offsetof('struct sock_fprog', 'filter')}")
print(f"no filter:  getppid() = {getppid()}")
print("seccomp(2):", run_in_child(with_seccomp).unwrap())
print("prctl(2):  ", run_in_child(with_prctl).unwrap())
print(f"and here, where no filter was installed: getppid() = {getppid()}")
