"""The Docker-like profile, loaded and compiled, does in a real kernel what Docker's would.

Each call is made in a forked child under the installed filter and is chosen so
that "allowed" and "denied" give different answers without side effects:
``reboot`` with a wrong magic fails with EINVAL when the kernel sees it, so EPERM
can only come from the filter; ``clone3(NULL, 0)`` is EINVAL when allowed; a
syscall newer than the profile is ENOSYS only if runc's stub is there (the
profile's default would say EPERM).
"""

from __future__ import annotations

import errno
import os
import platform
from pathlib import Path

import pytest
from conftest import require

from callgate.arch import native_arch
from callgate.kernel.child import SyscallOutcome, probe_syscalls
from callgate.policy import load_policy
from callgate.policy.compiler import compile_section

DOCKER_LIKE = Path(__file__).resolve().parents[2] / "policies" / "examples" / "docker-like.json"
ARCH = native_arch()
AF_VSOCK, AF_UNIX, SOCK_STREAM = 40, 1, 1


def nr(name: str) -> int:
    return ARCH.number(name)


def errno_of(code: int) -> SyscallOutcome:
    return SyscallOutcome("errno", code)


@pytest.fixture(scope="module")
def kernel_ok():
    require(platform.system() == "Linux" and os.path.exists("/proc/self/status"), "Linux")
    if ARCH.name not in ("x86_64", "aarch64"):
        pytest.skip("the probes assume x86_64 or aarch64 syscall semantics")


def probe(caps, calls):
    section = load_policy(DOCKER_LIKE, arch=ARCH.name, caps=caps).kernel
    return probe_syscalls(compile_section(section, ARCH), calls)


def test_unprivileged_docker_like_profile_in_the_kernel(kernel_ok):
    newest = max(ARCH.numbers.values())  # the profile lists the newest name libseccomp knows
    calls = [
        (nr("getppid"), ()),
        (nr("reboot"), (0, 0, 0, 0)),
        (nr("clone3"), (0, 0)),
        (nr("personality"), (0xFFFFFFFF,)),
        (nr("personality"), (3,)),
        (nr("socket"), (AF_VSOCK, SOCK_STREAM, 0)),
        (newest + 1, ()),
    ]
    outcomes = probe([], calls)
    assert outcomes[0] == SyscallOutcome("returned", os.getpid())
    assert outcomes[1] == errno_of(errno.EPERM)  # the kernel itself would say EINVAL
    assert outcomes[2] == errno_of(errno.ENOSYS)  # the profile's clone3 rule
    assert outcomes[3].kind == "returned"  # querying the persona is allowed
    assert outcomes[4] == errno_of(errno.EPERM)
    assert outcomes[5] == errno_of(errno.EPERM)  # AF_VSOCK is refused by the filter
    assert outcomes[6] == errno_of(errno.ENOSYS)  # runc's stub, not the default EPERM


def test_cap_sys_boot_and_sys_admin_open_their_syscalls(kernel_ok):
    calls = [(nr("reboot"), (0, 0, 0, 0)), (nr("clone3"), (0, 0))]
    outcomes = probe(["CAP_SYS_BOOT", "CAP_SYS_ADMIN"], calls)
    assert outcomes[0] == errno_of(errno.EINVAL)  # reached the kernel: wrong magic
    assert outcomes[1] == errno_of(errno.EINVAL)  # reached the kernel: NULL args, size 0
