"""Lab 8, a reference solution: lock_plugin does lockdown in the right order."""

from callgate.kernel.lockdown import lock_plugin
from callgate.runtime.plugin import Plugin

# The gate policy the plugin runs under (lines.wasm: arguments, stdout and stderr, exit).
# lock_plugin derives the host's kernel filter from it: the runtime's own syscalls plus
# those of the gates this policy lets run - and execve, execveat, fork … always denied.
POLICY = """
[gates]
default = "errno(ENOSYS)"

[[gates.rules]]
names = ["args_sizes_get", "args_get", "proc_exit"]
action = "allow"

[[gates.rules]]
names = ["fd_fdstat_get", "fd_write"]
action = "allow"
args = [{ index = 0, op = "ge", value = 1, width = 32 },
        { index = 0, op = "le", value = 2, width = 32 }]
"""


def lock(plugin: Plugin) -> None:
    """Seal this process: fds, capabilities, NO_NEW_PRIVS, W^X, Landlock, the filter."""
    lock_plugin(plugin, POLICY)
