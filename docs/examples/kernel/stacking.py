"""Stacking: a second filter adds to the first, never replaces it; the strictest answer wins.

Every filter the thread has runs on every syscall, the newest first, and the kernel takes
the most restrictive action (kill_process < kill_thread < trap < errno < user_notif < trace
< log < allow). Between two answers of the same action, the newest filter's data wins.
"""

import errno
import signal
from functools import partial

from callgate.arch import native_arch
from callgate.asm.assembler import assemble
from callgate.kernel.binding import install_filter, raw_syscall, set_no_new_privs
from callgate.kernel.child import run_in_child

GETPPID = native_arch().number("getppid")


def only(name, action):
    """A filter that answers `action` to one syscall and allows the rest."""
    return assemble(f"""
        A = arch
        if (A != ARCH_X86_64) goto kill
        A = sys_number
        if (A != {name}) goto allow
        return {action}
        allow:
        return ALLOW
        kill:
        return KILL_PROCESS
    """, "x86_64")


def filters_installed():
    with open("/proc/self/status") as status:
        return next(line.split()[1] for line in status if line.startswith("Seccomp_filters:"))


def stack(*actions):
    set_no_new_privs()
    for action in actions:
        install_filter(only("getppid", action))
    ret, err = raw_syscall(GETPPID)
    answer = "a pid" if ret > 0 else f"-1, {errno.errorcode[err]}"
    return f"{answer:<14}{filters_installed()}"


print(f"{'filters, oldest first':<34}{'getppid()':<14}Seccomp_filters")
for actions in (["ERRNO(EPERM)"], ["ERRNO(EPERM)", "ALLOW"], ["ALLOW", "ERRNO(EPERM)"],
                ["ERRNO(EPERM)", "ERRNO(EACCES)"], ["ERRNO(EPERM)", "KILL_PROCESS"]):
    result = run_in_child(partial(stack, *actions))
    outcome = result.value if result.ok else f"killed by {signal.Signals(result.signal).name}"
    print(f"{' then '.join(actions):<34}{outcome}")
