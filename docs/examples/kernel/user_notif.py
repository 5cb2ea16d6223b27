"""USER_NOTIF: the filter parks a syscall, and a supervisor in another process answers it.

The child installs a filter with SECCOMP_FILTER_FLAG_NEW_LISTENER, which returns a listener
fd, and hands that fd to its parent over a UNIX socket (SCM_RIGHTS). The parent's
callgate.kernel.supervisor.Supervisor then answers every USER_NOTIF syscall of the child.
"""

import errno
import os
import socket
import tempfile

from callgate.arch import native_arch
from callgate.asm.assembler import assemble
from callgate.kernel.binding import (
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    install_filter,
    raw_syscall,
    set_no_new_privs,
)
from callgate.kernel.supervisor import Supervisor, Verdict

SUPERVISED = assemble("""
    A = arch
    if (A != ARCH_X86_64) goto kill
    A = sys_number
    if (A == getppid) goto ask
    if (A == openat) goto ask
    return ALLOW
    ask:
    return USER_NOTIF
    kill:
    return KILL_PROCESS
""", "x86_64")
GETPPID = native_arch().number("getppid")

shared = tempfile.mkdtemp()
with open(os.path.join(shared, "notes.txt"), "w") as notes:
    notes.write("meeting at noon\n")


def decide(notification, memory):
    """The supervisor's policy, called for each parked syscall of the child."""
    nr, args = notification.data.nr, notification.data.args
    if nr == GETPPID:
        print("supervisor: getppid -> 4242, without running it", flush=True)
        return Verdict.returning(4242)
    path = memory.read_cstring(args[1]).decode()  # the filter sends only openat(dirfd, path…)
    if os.path.dirname(path) != shared:
        print(f"supervisor: openat {path!r} -> EACCES", flush=True)
        return Verdict.deny(errno.EACCES)
    # Open it here, on our own copy of the path, and give the child the fd: the child can
    # no longer swap the path in its memory after we looked (see docs/kernel.md, TOCTOU).
    print(f"supervisor: openat {os.path.basename(path)!r} -> opened here, fd injected",
          flush=True)
    return Verdict.inject(os.open(path, os.O_RDONLY))


def child(sock):
    set_no_new_privs()
    listener = install_filter(SUPERVISED, SECCOMP_FILTER_FLAG_NEW_LISTENER)
    socket.send_fds(sock, [b"listener"], [listener])
    os.close(listener)  # the child must never answer its own notifications
    print(f"child: getppid() = {raw_syscall(GETPPID)[0]}", flush=True)
    fd = os.open(os.path.join(shared, "notes.txt"), os.O_RDONLY)
    print(f"child: notes.txt says {os.read(fd, 100).decode().strip()!r}", flush=True)
    try:
        os.open("/etc/passwd", os.O_RDONLY)
    except OSError as exc:
        print(f"child: /etc/passwd: {exc.strerror}", flush=True)


parent_end, child_end = socket.socketpair()
pid = os.fork()
if pid == 0:
    try:
        child(child_end)
    finally:
        os._exit(0)
_, (listener,), _, _ = socket.recv_fds(parent_end, 100, 1)
with Supervisor(listener, decide) as supervisor:
    _, status = os.waitpid(pid, 0)
print(f"parent: child exited with status {os.waitstatus_to_exitcode(status)}; "
      f"{supervisor.answered} notifications answered")
os.unlink(os.path.join(shared, "notes.txt"))
os.rmdir(shared)
