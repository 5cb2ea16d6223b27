"""The derived host policy: what it grants, what it never grants, checked on the real kernel."""

from __future__ import annotations

import errno
import mmap
import signal
import tomllib
from importlib import resources

import pytest

from callgate.arch import native_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.gates.spec import GateSpec
from callgate.kernel.child import SyscallOutcome, probe_syscalls
from callgate.kernel.hostpolicy import (
    ALWAYS_DENIED,
    CLONE_THREAD,
    derive_host_policy,
    gate_may_run,
    load_baseline,
)
from callgate.policy import load_policy_text
from callgate.policy.names import is_known_syscall

ARCH = native_arch()
KILLED = SyscallOutcome("killed", signal.SIGSYS)
# A policy that tries to allow everything, including what must stay denied.
PERMISSIVE = """
[kernel]
default = "allow"
[[kernel.rules]]
names = [{names}]
action = "allow"
"""
CLONE_SIGHAND = 0x800  # alone: not a thread; EINVAL if it ever got through (no CLONE_VM)


def policy(text: str):
    return load_policy_text(text).policy


def nr(name: str) -> int:
    return ARCH.number(name)


def spec(name: str, syscalls: set[str]) -> GateSpec:
    return GateSpec(
        module="wasi_snapshot_preview1",
        name=name,
        number=0,
        params=(),
        results=("i32",),
        func=lambda call: 0,
        errno_results=lambda n: (n,),
        syscalls=frozenset(syscalls),
    )


# --- the shipped baseline --------------------------------------------------------------------


def test_baseline_file_teaches_one_syscall_per_rule():
    raw = tomllib.loads(
        (resources.files("callgate.policies") / "runtime-baseline.toml").read_text()
    )
    rules = raw["kernel"]["rules"]
    assert raw["kernel"]["default"] == "kill_process"
    for rule in rules:
        assert len(rule["names"]) == 1, rule
        assert rule["action"] == "allow"
        assert len(rule["comment"]) > 30, f"{rule['names'][0]} needs a comment saying why"
        assert is_known_syscall(rule["names"][0])


def test_baseline_reaches_nothing_outside_the_process():
    names = {n for rule in load_baseline().rules for n in rule.names}
    outside = {
        "open",
        "openat",
        "openat2",
        "socket",
        "connect",
        "execve",
        "clone",
        "clone3",
        "fork",
        "vfork",
        "kill",
        "tgkill",
        "ptrace",
        "read",
        "sendto",
        "sendmsg",
    }
    assert not names & outside
    assert not names & set(ALWAYS_DENIED)


# --- union of sources ------------------------------------------------------------------------


def test_gate_syscalls_count_only_for_gates_the_policy_lets_run():
    specs = [spec("path_open", {"openat"}), spec("fd_write", {"write", "writev"})]
    allowing = policy(
        '[gates]\ndefault = "errno(EPERM)"\n'
        '[[gates.rules]]\nnames = ["path_open", "fd_write"]\naction = "allow"\n'
    )
    denying = policy(
        '[gates]\ndefault = "allow"\n'
        '[[gates.rules]]\nnames = ["path_open"]\naction = "errno(EPERM)"\n'
    )
    granted = derive_host_policy(allowing, specs)
    refused = derive_host_policy(denying, specs)
    assert "openat" in granted.allowed and "writev" in granted.allowed
    assert "gate wasi_snapshot_preview1.path_open" in granted.reasons["openat"]
    assert "openat" not in refused.allowed and "writev" in refused.allowed
    # and on the kernel: openat(-1, NULL) is EBADF/EFAULT when granted, killed when not
    call = [(nr("openat"), (-1, 0, 0))]
    assert probe_syscalls(granted.compile(), call)[0].kind == "errno"
    assert probe_syscalls(refused.compile(), call) == [KILLED]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ('default = "allow"', True),
        ('default = "kill_process"', False),
        ('default = "trap"', True),  # the broker may let it through
        ('default = "allow"\n[[gates.rules]]\nnames = ["g"]\naction = "kill_thread"', False),
        ('default = "kill_process"\n[[gates.rules]]\nnames = ["g"]\naction = "log"', True),
        (  # a conditional denial leaves the other arguments to the default
            'default = "allow"\n[[gates.rules]]\nnames = ["g"]\naction = "errno(1)"\n'
            'args = [{index = 0, op = "eq", value = 1}]',
            True,
        ),
    ],
)
def test_gate_may_run(rules, expected):
    gates = load_policy_text(f"[gates]\n{rules}\n", gate_names=["g"]).policy.gates
    assert gate_may_run(gates, "g") is expected


def test_kernel_rules_are_added_with_their_reason():
    host = derive_host_policy(
        policy(
            '[kernel]\ndefault = "kill_process"\n[[kernel.rules]]\nnames = ["getppid"]\n'
            'action = "allow"\ncomment = "for logging"\n'
        ),
        [],
    )
    assert host.reasons["getppid"] == ("[kernel] rule: for logging",)
    assert probe_syscalls(host.compile(), [(nr("getppid"), ())])[0].kind == "returned"


# --- what no policy can grant ----------------------------------------------------------------

# Args that make each call fail harmlessly even if a broken filter let it through.
HARMLESS_ARGS = {"fork": None, "vfork": None, "ptrace": (-1,), "execve": (0, 0, 0)}


@pytest.mark.parametrize("default", ["allow", "errno(EPERM)"])
def test_always_denied_set_beats_a_policy_that_allows_it(default):
    names = [n for n in ALWAYS_DENIED if n in ARCH.numbers and HARMLESS_ARGS.get(n, ()) is not None]
    text = PERMISSIVE.format(names=", ".join(f'"{n}"' for n in names))
    host = derive_host_policy(policy(text.replace('"allow"', f'"{default}"', 1)), [])
    assert not set(ALWAYS_DENIED) & set(host.allowed)
    outcomes = probe_syscalls(host.compile(), [(nr(n), HARMLESS_ARGS.get(n, ())) for n in names])
    expected = KILLED if default == "allow" else SyscallOutcome("errno", errno.EPERM)
    assert dict(zip(names, outcomes, strict=True)) == dict.fromkeys(names, expected)


def test_fork_and_vfork_are_denied_by_number():
    host = derive_host_policy(policy(PERMISSIVE.format(names='"fork", "vfork", "clone"')), [])
    program = host.compile()
    # Not on the kernel: if the filter were wrong, the probe would really fork.
    for name in ("fork", "vfork"):
        if name in ARCH.numbers:
            data = SeccompData.make(nr(name), ARCH.audit_arch)
            assert interpret(program, data).ret == SECCOMP_RET_KILL_PROCESS


def test_clone_is_allowed_for_threads_only():
    host = derive_host_policy(policy(PERMISSIVE.format(names='"clone"')), [])
    calls = [
        (nr("clone"), (CLONE_THREAD,)),  # a thread without CLONE_SIGHAND: EINVAL, got through
        (nr("clone"), (CLONE_SIGHAND,)),  # not a thread: a fork in disguise
    ]
    assert probe_syscalls(host.compile(), calls) == [
        SyscallOutcome("errno", errno.EINVAL),
        KILLED,
    ]


def test_clone3_answers_enosys_so_glibc_falls_back_to_clone():
    host = derive_host_policy(policy(PERMISSIVE.format(names='"clone3"')), [])
    assert probe_syscalls(host.compile(), [(nr("clone3"), (0, 0))]) == [
        SyscallOutcome("errno", errno.ENOSYS)
    ]


def test_personality_may_be_queried_but_not_changed():
    host = derive_host_policy(policy(PERMISSIVE.format(names='"personality"')), [])
    query, change = probe_syscalls(
        host.compile(), [(nr("personality"), (0xFFFFFFFF,)), (nr("personality"), (0x0040000,))]
    )
    assert query.kind == "returned" and change == KILLED


def _mmap(prot: int) -> tuple[int, tuple[int, ...]]:
    return nr("mmap"), (0, 4096, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)


@pytest.mark.parametrize("exec_after_lockdown", [False, True])
def test_w_xor_x(exec_after_lockdown):
    text = PERMISSIVE.format(names='"mmap", "mprotect", "pkey_mprotect"')
    text = text.replace('"allow"', '"kill_process"', 1)
    host = derive_host_policy(policy(text), [], exec_after_lockdown=exec_after_lockdown)
    r, w, x = mmap.PROT_READ, mmap.PROT_WRITE, mmap.PROT_EXEC
    calls = [_mmap(r | w), _mmap(r | x), _mmap(w | x), _mmap(r | w | x)]
    calls += [(nr("mprotect"), (0, 0, r | x)), (nr("mprotect"), (0, 0, r | w | x))]
    if "pkey_mprotect" in ARCH.numbers:
        calls += [(nr("pkey_mprotect"), (0, 0, r | x, -1))]
    kinds = [o.kind for o in probe_syscalls(host.compile(), calls)]
    exec_only = "returned" if exec_after_lockdown else "killed"
    assert kinds[:4] == ["returned", exec_only, "killed", "killed"]
    assert kinds[4:6] == [exec_only, "killed"]
    if len(kinds) > 6:
        assert kinds[6] == exec_only


def test_deny_action_follows_a_denying_default_and_is_kill_otherwise():
    eperm = derive_host_policy(policy('[kernel]\ndefault = "errno(EPERM)"\n'), [])
    allow = derive_host_policy(policy('[kernel]\ndefault = "allow"\n'), [])
    assert eperm.deny_action == SECCOMP_RET_ERRNO | errno.EPERM
    assert allow.deny_action == SECCOMP_RET_KILL_PROCESS
    assert allow.default_allows and not eperm.default_allows
    assert allow.section.default == SECCOMP_RET_ALLOW


def test_an_oci_profile_keeps_its_enosys_stub_and_default():
    from pathlib import Path

    profile = Path(__file__).resolve().parents[2] / "policies" / "examples" / "docker-like.json"
    from callgate.policy import load_policy

    source = load_policy(profile, arch=ARCH.name)
    host = derive_host_policy(source, [])
    assert host.section.enosys_above == source.kernel.enosys_above
    assert host.section.default == source.kernel.default
    assert "execve" not in host.allowed and "socket" in host.allowed
    above = source.kernel.enosys_above + 1  # newer than the profile knows: runc's stub
    calls = [(nr("execve"), (0, 0, 0)), (nr("getppid"), ()), (above, ())]
    denied, allowed, newer = probe_syscalls(host.compile(), calls)
    assert denied == SyscallOutcome("errno", errno.EPERM)  # the profile's default
    assert allowed.kind == "returned"
    assert newer == SyscallOutcome("errno", errno.ENOSYS)


def test_w_xor_x_holds_on_a_32_bit_arch_through_mmap2():
    from callgate.arch import get_arch

    x86 = get_arch("x86")
    host = derive_host_policy(policy('[kernel]\ndefault = "kill_process"\n'), [], arch=x86)
    program = host.compile()

    def verdict(prot: int) -> int:
        data = SeccompData.make(x86.number("mmap2"), x86.audit_arch, (0, 4096, prot, 0x22, -1, 0))
        return interpret(program, data).ret

    assert verdict(mmap.PROT_READ | mmap.PROT_WRITE) == SECCOMP_RET_ALLOW
    assert verdict(mmap.PROT_READ | mmap.PROT_EXEC) == SECCOMP_RET_KILL_PROCESS
    assert verdict(mmap.PROT_WRITE | mmap.PROT_EXEC) == SECCOMP_RET_KILL_PROCESS


def test_a_syscall_the_kernel_section_denies_outright_is_not_listed_as_allowed():
    specs = [spec("path_open", {"openat", "fstat"})]
    text = (
        '[gates]\ndefault = "allow"\n[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["openat"]\naction = "errno(EACCES)"\n'
        '[[kernel.rules]]\nnames = ["fstat"]\naction = "errno(EACCES)"\n'
        'args = [{ index = 0, op = "eq", value = 99 }]\n'
    )
    host = derive_host_policy(policy(text), specs)
    assert "openat" not in host.allowed  # denied for every argument
    assert "fstat" in host.allowed  # denied only for fd 99
    assert probe_syscalls(host.compile(), [(nr("openat"), (-1, 0, 0))]) == [
        SyscallOutcome("errno", errno.EACCES)
    ]
