"""Lab 8: lock a process down and prove that execve is dead - in a child process."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callgate.teach.labs.base import Check, Lab, Stop, failed, passed
from callgate.teach.labs.lockdown_harness import RAN

HARNESS = "callgate.teach.labs.lockdown_harness"
TIMEOUT = 60.0
GUEST_OUTPUT = "line 1\nline 2\n"
#: /proc/PID/status's Seccomp field of a process that ran under a filter: 2 while it
#: lives, 3 (SECCOMP_MODE_DEAD) once its filter has killed it.
FILTER_MODES = {"2": "filter mode", "3": "filter mode, then killed by its filter"}


@dataclass(frozen=True)
class Harness:
    """How one harness process went: its lines, how it ended, and its status at the end."""

    lines: list[str]
    stderr: str
    exit_code: int | None
    signal: int | None
    status: dict[str, str]  # /proc/PID/status of the dead process: Seccomp, NoNewPrivs

    def said(self, text: str) -> bool:
        return f"harness: {text}" in self.lines

    def ending(self) -> str:
        if self.signal is not None:
            return f"was killed by {signal.Signals(self.signal).name}"
        return f"exited with status {self.exit_code}"


def run_harness(handin: Path, how: str, work: Path) -> Harness:
    """Run the harness in a child process; read its status before reaping it."""
    out, err = work / f"{how}.out", work / f"{how}.err"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", HARNESS, str(handin.resolve()), how],
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                cwd=work, env=env)
    status: dict[str, str] = {}
    try:
        _wait_unreaped(proc.pid, TIMEOUT)
        try:  # a dead, unreaped process still shows its seccomp state
            with open(f"/proc/{proc.pid}/status") as lines:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in lines
                              if ":\t" in line)
        except OSError:
            pass
    except TimeoutError:
        proc.kill()
    code = proc.wait()
    return Harness(out.read_text(errors="replace").splitlines(),
                   err.read_text(errors="replace"),
                   code if code >= 0 else None, -code if code < 0 else None, status)


def _wait_unreaped(pid: int, timeout: float) -> None:
    """Wait for ``pid`` to exit without reaping it (``WNOWAIT``), for at most ``timeout``."""
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            raise TimeoutError(f"the harness did not finish within {timeout} s")
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    finally:
        os.close(pidfd)


def describe(h: Harness) -> list[str]:
    lines = [f"the locked process {h.ending()}; it printed:"]
    lines.extend(f"  {line}" for line in h.lines[-8:])
    if h.stderr.strip():
        lines.append(f"  stderr: {h.stderr.strip().splitlines()[-1]}")
    return lines


def check(path: Path, work: Path) -> Iterator[Check]:
    first = run_harness(path, "execve", work)
    problem = next((line for line in first.lines
                    if "cannot import" in line or "importing it raised" in line
                    or "defines no lock" in line), None)
    if problem:
        raise Stop(failed(f"{path.name} defines lock(plugin)", problem.removeprefix("harness: ")))
    if not first.said("locked"):
        raise Stop(failed("lock(plugin) returns", *describe(first),
                          "lock() must return after sealing the process; a filter that "
                          "denies what Python needs to go on (write, futex, brk, mmap …) "
                          "kills it here. callgate.kernel.lockdown.lock_plugin derives "
                          "one that lets the runtime live"))
    yield passed("lock(plugin) returns")

    seccomp, nnp = first.status.get("Seccomp"), first.status.get("NoNewPrivs")
    if seccomp in FILTER_MODES and nnp == "1":
        yield passed("the process is in seccomp filter mode with NO_NEW_PRIVS",
                     f"/proc/PID/status: Seccomp {seccomp} ({FILTER_MODES[seccomp]}), "
                     f"NoNewPrivs {nnp}")
    else:
        yield failed("the process is in seccomp filter mode with NO_NEW_PRIVS",
                     f"/proc/PID/status: Seccomp {seccomp}, NoNewPrivs {nnp} (want 2 and 1)",
                     "install a seccomp filter (Seccomp 2) after setting NO_NEW_PRIVS")

    printed = [line for line in first.lines if not line.startswith("harness:")]
    if "\n".join(printed) + "\n" == GUEST_OUTPUT and first.said(
            "the guest exited with status 0"):
        yield passed("the guest still runs after lock()")
    else:
        yield failed("the guest still runs after lock()", *describe(first),
                     "lock down after loading and before running, and let the process "
                     "keep the syscalls the runtime and the guest's gates need (write, for "
                     "fd_write): lock_plugin(plugin, policy) derives them from the policy")

    for how, h in (("execve", first), ("execveat", run_harness(path, "execveat", work))):
        name = f"{how} is dead after lock()"
        if not h.said("the guest exited with status 0"):
            yield failed(name, "the process did not get that far", *describe(h))
        elif RAN in h.lines:
            yield failed(name, *describe(h),
                         f"{how} started /bin/echo after lock(): a new program inherits the "
                         "filter but none of callgate's gates. Deny it in the filter"
                         + ("; execveat is a second way in, with its own number (322 on "
                            "x86_64), so deny both" if how == "execveat" else ""))
        elif h.signal == signal.SIGSYS:
            yield passed(name, f"the kernel killed the process with SIGSYS at {how}")
        elif any(line.startswith(f"harness: {how} failed:") for line in h.lines):
            reason = next(line for line in h.lines if line.startswith(f"harness: {how}"))
            yield passed(name, f"{reason.removeprefix('harness: ')}: the kernel refused it")
        else:
            yield failed(name, *describe(h), "the checker could not tell what happened")


LAB = Lab(
    number=8,
    slug="lockdown",
    title="Lock a process down and prove execve is dead",
    goal="""\
Write lab08.py with a function lock(plugin). The checker starts a fresh Python process (a
filter can never be removed, so it is a child made for the purpose), loads lines.wasm as
a Plugin there, calls your lock(plugin), runs the guest, and then tries to start
/bin/echo - once with execve, once with execveat. After lock():
  - the process must be in seccomp filter mode with NO_NEW_PRIVS;
  - the guest must still run and print its two lines;
  - neither execve nor execveat may start a program (a kill or an errno both count).""",
    hints=(
        "callgate.kernel.lockdown.lock_plugin(plugin, policy) does the whole sequence: "
        "close fds, drop capabilities, NO_NEW_PRIVS, W^X, Landlock, then the filter on "
        "every thread. Which policy? The guest's gates need some host syscalls.",
        "Or do it by hand with callgate.kernel.binding: set_no_new_privs(), then "
        "install_filter(program, SECCOMP_FILTER_FLAG_TSYNC). Then the filter must let "
        "Python and the runtime live, and deny execve and execveat.",
        "docs/kernel-api.md shows inheritance across execve; docs/kernel.md lists what "
        "callgate's host policy always denies, and why.",
    ),
    handin="lab08.py",
    starter="lab08_starter.py",
    solution="lab08_solution.py",
    checker=check,
    try_it=(f"python -m {HARNESS} lab08.py execve",),
)
