"""The [kernel] section: host syscalls watched two ways, sorted against the derived host policy."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import require
from learn_helpers import WASM

from callgate.gates.wasi import Preopen, WasiConfig
from callgate.kernel.hostpolicy import derive_host_policy, load_baseline
from callgate.learn import learn
from callgate.learn.kernel_section import plan_kernel
from callgate.policy import Policy

# Syscalls only the file gates make (not in the runtime baseline): a run that copies a file
# must show them, whichever way it is watched.
FILE_SYSCALLS = {"openat2", "read", "newfstatat", "fcntl"}


def copy_config(tmp_path) -> WasiConfig:
    (tmp_path / "src").write_bytes(b"x" * 3000)
    return WasiConfig(args=["copyfile", "/w/src", "/w/dst", "512"],
                      preopens=[Preopen(tmp_path, "/w")])


@pytest.mark.parametrize("method", ["strace", "user_notif"])
def test_the_file_gates_syscalls_are_seen_and_covered_by_the_gates(tmp_path, method):
    if method == "strace":
        require(shutil.which("strace") is not None, "strace")
    learned = learn(WASM / "copyfile.wasm", copy_config(tmp_path), kernel=method,
                    stdout=subprocess.DEVNULL)
    plan = learned.kernel
    assert plan is not None and plan.method == method
    assert set(plan.observed) >= FILE_SYSCALLS
    assert {name: any(r.startswith("gate ") for r in plan.covered[name])
            for name in FILE_SYSCALLS} == dict.fromkeys(FILE_SYSCALLS, True)
    assert plan.added == () and plan.denied == {} and plan.unknown == ()
    # every observed syscall is allowed by the host policy the learned policy derives to
    host = derive_host_policy(learned.policy, learned.static.table)
    assert set(plan.observed) <= set(host.reasons)


def test_without_the_file_gates_their_syscalls_would_not_be_covered(tmp_path):
    """The same observations against learnme's policy (no file gates): nothing is granted
    twice, and what the gates do not cover becomes explicit rules."""
    learned = learn(WASM / "learnme.wasm", WasiConfig(args=["learnme"]), kernel="user_notif",
                    stdout=subprocess.DEVNULL)
    gates_only = Policy(gates=learned.policy.gates)
    plan = plan_kernel(dict.fromkeys(FILE_SYSCALLS, 1), gates_only, learned.static.table)
    baseline = {name for rule in load_baseline().rules for name in rule.names}
    assert {rule.names[0] for rule in plan.added} == FILE_SYSCALLS - baseline


def test_the_learned_kernel_default_is_the_baseline_default():
    learned = learn(WASM / "learnme.wasm", WasiConfig(args=["learnme"]), kernel="user_notif",
                    stdout=subprocess.DEVNULL)
    assert learned.policy.kernel is not None
    assert learned.policy.kernel.default == load_baseline().default
