"""The kernel layer: a real seccomp filter on the process that runs plugins.

One module per concern (see docs/kernel.md):

* :mod:`~callgate.kernel.binding`: seccomp(2), prctl and the USER_NOTIF ioctls (cffi, ABI mode);
* :mod:`~callgate.kernel.child`: the fork oracle - run code or probe syscalls in a child;
* :mod:`~callgate.kernel.hostpolicy`: the host policy derived from a plugin policy;
* :mod:`~callgate.kernel.landlock`: confining paths (and TCP ports), which a filter cannot see;
* :mod:`~callgate.kernel.lockdown`: closing fds, dropping capabilities, NNP, W^X, Landlock,
  filter + TSYNC;
* :mod:`~callgate.kernel.supervisor`: answering USER_NOTIF syscalls from another process;
* :mod:`~callgate.kernel.strace`: watching a process's syscalls between marker syscalls.

The kernel layer knows policies and gate specs, never the runtime: the worker process
that combines both lives one layer up, in :mod:`callgate.isolation`.

The binding's API is re-exported here (``from callgate.kernel import install_filter``);
everything else is imported from its module.
"""

from callgate.kernel.binding import (
    SECCOMP_FILTER_FLAG_LOG,
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE,
    Notification,
    NotifSizes,
    SeccompError,
    SeccompInstallError,
    action_available,
    install_filter,
    no_new_privs,
    notif_addfd,
    notif_id_valid,
    notif_recv,
    notif_send,
    notif_sizes,
    raw_syscall,
    set_no_new_privs,
)

__all__ = [
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_NEW_LISTENER",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    "SECCOMP_USER_NOTIF_FLAG_CONTINUE",
    "NotifSizes",
    "Notification",
    "SeccompError",
    "SeccompInstallError",
    "action_available",
    "install_filter",
    "no_new_privs",
    "notif_addfd",
    "notif_id_valid",
    "notif_recv",
    "notif_send",
    "notif_sizes",
    "raw_syscall",
    "set_no_new_privs",
]
