"""The kernel layer: a real seccomp filter on the process that runs plugins.

One module per concern (see docs/kernel.md):

* :mod:`~callgate.kernel.binding`: seccomp(2), prctl and the USER_NOTIF ioctls (cffi, ABI mode);
* :mod:`~callgate.kernel.child`: the fork oracle - run code or probe syscalls in a child;
* :mod:`~callgate.kernel.hostpolicy`: the host policy derived from a plugin policy;
* :mod:`~callgate.kernel.baseline`: measuring the runtime's steady-state syscalls;
* :mod:`~callgate.kernel.lockdown`: closing fds, dropping capabilities, NNP, filter + TSYNC;
* :mod:`~callgate.kernel.worker` / :mod:`~callgate.kernel.worker_main` /
  :mod:`~callgate.kernel.wire`: the locked-down worker process and its protocol;
* :mod:`~callgate.kernel.isolated`: a plugin in a worker;
* :mod:`~callgate.kernel.supervisor`: answering USER_NOTIF syscalls from another process.

Nothing is imported here, so ``import callgate.kernel.binding`` stays light.
"""
