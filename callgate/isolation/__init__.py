"""A plugin in a locked-down worker process: the runtime and the kernel layer combined.

* :mod:`~callgate.isolation.wire`: the length-prefixed protocol between parent and worker;
* :mod:`~callgate.isolation.worker_main`: the worker process's entry point (lockdown, then serve);
* :mod:`~callgate.isolation.worker`: the parent's handle on a worker, and remote memory;
* :mod:`~callgate.isolation.isolated`: :class:`IsolatedPlugin`, ``Plugin``'s API in a worker.
"""
