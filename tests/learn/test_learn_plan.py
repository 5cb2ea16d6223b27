"""From observations to rules: pinning, releasing, and the kernel section's four fates.

These tests feed hand-made observations through the planners and the TOML writer, load
the text back with the policy loader, and judge calls with the reference evaluator
(``callgate.policy.reference.decide``): what the rules *mean*, not how they are spelled.
"""

from __future__ import annotations

import errno

import pytest
from learn_helpers import WASM

from callgate.arch import AUDIT_ARCH_CALLGATE, native_arch
from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, action_of
from callgate.bpf.seccomp_data import SeccompData
from callgate.errors import CallgateError
from callgate.gates.app import AppGates
from callgate.kernel.hostpolicy import CLONE_THREAD, derive_host_policy
from callgate.learn.gate_section import MAX_RULES, MAX_VALUES, plan_gate, plan_gates
from callgate.learn.imports import imported_gates
from callgate.learn.kernel_section import plan_kernel
from callgate.learn.recorder import GateUse
from callgate.learn.synth import RunDescription, policy_text
from callgate.policy import load_policy, load_policy_result
from callgate.policy.lint import lint
from callgate.policy.reference import decide

STATIC = imported_gates(WASM / "copyfile.wasm")
SPECS = {spec.name: spec for spec in STATIC.gates}
RUN = RunDescription(args=["copyfile"], env_names=[], preopens=[], exit_code=0)
DENIED = SECCOMP_RET_ERRNO | WASI_ERRNO["ENOSYS"]


def use(pinned: tuple[int, ...], calls: dict[tuple[int, ...], int]) -> GateUse:
    return GateUse(sum(calls.values()), pinned, dict(calls))


def gate_verdict(policy, name: str, *args: int) -> int:
    data = SeccompData.make(STATIC.table.arch.numbers[name], AUDIT_ARCH_CALLGATE, args)
    return decide(policy.gates, STATIC.table.arch, data)


def learned(uses: dict[str, GateUse], kernel=None):
    text = policy_text("copyfile.wasm", STATIC, plan_gates(STATIC.gates, uses), kernel, RUN)
    return text, load_policy(text)


def test_a_small_set_of_fds_becomes_one_rule_per_fd():
    text, policy = learned({"fd_write": use((0,), {(1,): 5, (2,): 1})})
    assert gate_verdict(policy, "fd_write", 1, 0x1000, 1, 0x2000) == SECCOMP_RET_ALLOW
    assert gate_verdict(policy, "fd_write", 2) == SECCOMP_RET_ALLOW
    assert gate_verdict(policy, "fd_write", 1 | 0xFFFFFFFF << 32) == SECCOMP_RET_ALLOW  # width 32
    for other in (0, 3, 5):
        assert gate_verdict(policy, "fd_write", other) == DENIED
    assert gate_verdict(policy, "random_get") == DENIED  # imported, never called
    assert gate_verdict(policy, "proc_exit", 1) == SECCOMP_RET_ALLOW  # allowed unused
    assert "# fd = 1: 5 calls" in text and "# fd = 2: 1 call" in text


def test_more_values_than_the_threshold_leave_the_argument_open():
    many = {(fd,): 1 for fd in range(3, 4 + MAX_VALUES)}
    plan = plan_gate(SPECS["fd_read"], use((0,), many))
    assert plan.pinned == () and plan.combos == (((), len(many)),)
    assert plan.released == ((0, f"{len(many)} distinct values (more than {MAX_VALUES})"),)
    _, policy = learned({"fd_read": use((0,), many)})
    assert gate_verdict(policy, "fd_read", 1234) == SECCOMP_RET_ALLOW


def test_several_pinned_arguments_allow_the_combinations_seen_not_their_product():
    seen = {(3, 1, 0, 0xA): 1, (3, 1, 9, 0xB): 1}  # fd, dirflags, oflags, rights_base
    _, policy = learned({"path_open": use((0, 1, 4, 5), seen)})
    assert gate_verdict(policy, "path_open", 3, 1, 0, 0, 0, 0xA) == SECCOMP_RET_ALLOW
    assert gate_verdict(policy, "path_open", 3, 1, 0, 0, 9, 0xB) == SECCOMP_RET_ALLOW
    assert gate_verdict(policy, "path_open", 3, 1, 0, 0, 9, 0xA) == DENIED  # O_CREAT|O_TRUNC
    assert gate_verdict(policy, "path_open", 4, 1, 0, 0, 0, 0xA) == DENIED  # another dir fd


def test_too_many_combinations_release_the_loosest_argument_first():
    seen = {(3, d, o, r): 1 for d in (0, 1) for o in (0, 1, 8, 9) for r in (0xA, 0xB)}
    plan = plan_gate(SPECS["path_open"], use((0, 1, 4, 5), seen))
    assert len(plan.combos) <= MAX_RULES
    assert 4 not in plan.pinned and (4, f"released to keep the rules at most {MAX_RULES}") \
        in plan.released  # oflags had the most values
    assert 0 in plan.pinned  # the fd, one value, stays pinned


def test_overflowing_observations_pin_nothing():
    plan = plan_gate(SPECS["fd_write"], GateUse(10, (0,), {(1,): 10}, overflow=True))
    assert plan.pinned == () and plan.released[0][0] == 0


def test_app_gates_are_allowed_by_name_only():
    gates = AppGates()
    spec = gates.add("kv_get", lambda call, fd: 0, params=("i32",), results=("i32",))
    plan = plan_gate(spec, GateUse(2, (), {(): 2}))
    assert plan.pinned == () and plan.combos == (((), 2),)


def test_a_gate_the_module_does_not_import_is_refused():
    with pytest.raises(CallgateError, match="does not import"):
        plan_gates(STATIC.gates, {"sock_accept": GateUse(1, (), {(): 1})})


def test_the_learned_text_loads_and_lints_clean():
    uses = {"fd_write": use((0,), {(1,): 1, (5,): 6}), "fd_read": use((0,), {(4,): 7}),
            "path_open": use((0, 1, 4, 5), {(3, 1, 0, 0xA): 1, (3, 1, 9, 0xB): 1}),
            "args_get": use((), {(): 1})}
    observed = {"write": 7, "read": 9, "openat2": 2, "ioctl": 1}
    _, gates_only = learned(uses)
    kernel = plan_kernel(observed, gates_only, STATIC.table)
    text, _ = learned(uses, kernel)
    findings = lint(load_policy_result(text))
    assert findings == [], findings


def test_each_observed_syscall_is_covered_dropped_unknown_or_added():
    _, gates_only = learned({"fd_write": use((0,), {(1,): 1}), "fd_read": use((0,), {(4,): 1})})
    observed = {"write": 3, "read": 2, "futex": 9, "execve": 1, "clone3": 1, "ioctl": 4,
                "clone": 1, "personality": 1, "syscall_0x3e8": 1}
    plan = plan_kernel(observed, gates_only, STATIC.table)
    assert set(plan.covered) == {"write", "read", "futex"}
    assert any("fd_read" in reason for reason in plan.covered["read"])
    assert set(plan.denied) == {"execve", "clone3"}
    assert plan.unknown == ("syscall_0x3e8",)
    assert [rule.names for rule in plan.added] == [("clone",), ("ioctl",), ("personality",)]


def test_added_kernel_rules_never_say_the_opposite_of_a_fixed_rule():
    """The learned rules, through the host-policy derivation, judged on concrete syscalls."""
    uses = {"fd_write": use((0,), {(1,): 1})}
    _, gates_only = learned(uses)
    observed = {"clone": 1, "personality": 1, "ioctl": 2, "execve": 1}
    _, policy = learned(uses, plan_kernel(observed, gates_only, STATIC.table))
    arch = native_arch()
    host = derive_host_policy(policy, STATIC.table, arch=arch)

    def verdict(name: str, *args: int) -> int:
        data = SeccompData.make(arch.numbers[name], arch.audit_arch, args)
        return decide(host.section, arch, data)

    thread = CLONE_THREAD | 0x3D0F00  # what glibc's pthread_create passes
    assert verdict("clone", thread) == SECCOMP_RET_ALLOW
    assert action_of(verdict("clone", 0x11)) != SECCOMP_RET_ALLOW  # a fork: still denied
    assert verdict("personality", 0xFFFFFFFF) == SECCOMP_RET_ALLOW
    assert action_of(verdict("personality", 0x0008)) != SECCOMP_RET_ALLOW
    assert verdict("ioctl", 1, 0x5401) == SECCOMP_RET_ALLOW
    assert action_of(verdict("execve")) != SECCOMP_RET_ALLOW
    assert "[kernel] rule: learned: 2 call(s) during the learning run" in host.reasons["ioctl"]
    assert verdict("clone3") == SECCOMP_RET_ERRNO | errno.ENOSYS  # the fixed rule's answer
