"""Why seccomp wants NO_NEW_PRIVS: without it, a filter could fool a setuid program.

Run as root. Each child drops to the user `nobody` first (an unprivileged process, no
capabilities), then tries things with and without NO_NEW_PRIVS.
"""

import errno
import os
import shutil
import subprocess
import tempfile
from functools import partial

from callgate.arch import native_arch
from callgate.bpf.insn import Insn
from callgate.kernel.binding import SeccompInstallError, install_filter, set_no_new_privs
from callgate.kernel.child import run_in_child

ALLOW_ALL = [Insn(0x06, 0, 0, 0x7FFF0000)]  # return ALLOW: the mildest filter there is
NOBODY = 65534
native_arch()  # look up the syscall table now: as nobody, Python could not read it later


def become_nobody(no_new_privs):
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)  # from here on: no capabilities, no CAP_SYS_ADMIN
    if no_new_privs:
        set_no_new_privs()  # prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def try_filter(as_nobody, no_new_privs):
    if as_nobody:
        become_nobody(no_new_privs)
    try:
        install_filter(ALLOW_ALL)  # seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog)
        return "installed"
    except SeccompInstallError as exc:
        return f"refused, errno {exc.errno} ({errno.errorcode[exc.errno]})"


def run_setuid(program, no_new_privs):
    become_nobody(no_new_privs)
    euid = subprocess.run([program, "-u"], capture_output=True, text=True).stdout.strip()
    return f"it runs with effective uid {euid}"


print("root, no NO_NEW_PRIVS:  ", run_in_child(partial(try_filter, False, False)).unwrap())
print("nobody, no NO_NEW_PRIVS:", run_in_child(partial(try_filter, True, False)).unwrap())
print("nobody, NO_NEW_PRIVS:   ", run_in_child(partial(try_filter, True, True)).unwrap())

# What NO_NEW_PRIVS protects: a setuid-root program (here a copy of id(1)) runs as root
# whoever starts it - unless the starter has NO_NEW_PRIVS, which execve honours. The copy
# goes in /tmp itself: nobody must be able to reach it, and a TMPDIR may be private.
scratch = tempfile.mkdtemp(dir="/tmp")
try:
    os.chmod(scratch, 0o755)
    setuid_id = shutil.copy("/usr/bin/id", os.path.join(scratch, "id"))
    os.chmod(setuid_id, 0o4755)  # -rwsr-xr-x root
    for nnp, who in ((False, "nobody, no NO_NEW_PRIVS:"), (True, "nobody, NO_NEW_PRIVS:   ")):
        result = run_in_child(partial(run_setuid, setuid_id, nnp))
        print(who, "starts setuid-root id:", result.unwrap())
finally:
    shutil.rmtree(scratch)
