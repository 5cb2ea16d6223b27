"""SECCOMP_GET_ACTION_AVAIL: ask the running kernel which return actions it knows.

A filter that returns an action the kernel does not know is treated as KILL_PROCESS, so a
program built for newer kernels asks first. Asking installs nothing: no child needed.
"""

from callgate.bpf import actions
from callgate.kernel.binding import action_available, notif_sizes

# (name, what the kernel does, what a callgate gate does with the same verdict)
ACTIONS = [
    ("KILL_PROCESS", "SIGSYS to the whole process", "the plugin dies (PluginKilled)"),
    ("KILL_THREAD", "SIGSYS to the calling thread", "the call is aborted (GateViolation)"),
    ("TRAP", "SIGSYS to a handler in the process", "the broker decides"),
    ("ERRNO", "the call fails with errno = data", "the gate returns WASI errno = data"),
    ("USER_NOTIF", "a supervisor process decides", "the broker decides"),
    ("TRACE", "a ptrace tracer decides", "the tracer decides"),
    ("LOG", "allowed, and logged to audit", "allowed, and an audit record"),
    ("ALLOW", "allowed", "allowed"),
]

print(f"{'action':<13}{'value':<12}{'here':<6}{'the kernel':<38}a callgate gate")
for name, kernel, gate in ACTIONS:
    value = getattr(actions, f"SECCOMP_RET_{name}")
    known = "yes" if action_available(value) else "no"
    print(f"{name:<13}{value:#010x}  {known:<6}{kernel:<38}{gate}")
UNKNOWN = 0x7FFE0000  # between LOG and ALLOW: no kernel defines it
print(f"{'(unknown)':<13}{UNKNOWN:#010x}  {'yes' if action_available(UNKNOWN) else 'no'}")
sizes = notif_sizes()  # SECCOMP_GET_NOTIF_SIZES, for USER_NOTIF below
print(f"USER_NOTIF structs here: seccomp_notif {sizes.notif} bytes, seccomp_notif_resp "
      f"{sizes.resp}, seccomp_data {sizes.data}")
