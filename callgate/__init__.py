"""callgate: run untrusted WebAssembly plugins with every host call mediated like a syscall.

Each import of a plugin is a *gate*. A call through a gate is packed into a
kernel-layout ``seccomp_data`` record and judged by a classic-BPF seccomp filter
before the host does anything on the guest's behalf.
"""

__version__ = "0.1.0"
