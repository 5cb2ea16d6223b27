"""OCI/Docker seccomp profiles: resolved per (arch, caps, kernel) the way Docker + runc do.

Expected models are written by hand from the profile text and runc's rules
(syscall numbers from the kernel's tables); behaviour checks use the reference
evaluator, which knows nothing about JSON.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from callgate.arch import get_arch
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import (
    ArgCheck,
    Layer,
    Op,
    PolicyError,
    PolicyWarning,
    Rule,
    Section,
    load_policy,
    load_policy_result,
)
from callgate.policy.oci import OciTarget, OciTargetError, parse_kernel_version
from callgate.policy.reference import decide

ALLOW = 0x7FFF0000
KILL_THREAD = 0x00000000
KILL_PROCESS = 0x80000000
TRAP = 0x00030000
LOG = 0x7FFC0000
USER_NOTIF = 0x7FC00000
EPERM = 0x00050001
EACCES = 0x0005000D
ENOSYS = 0x00050026
DOCKER_LIKE = Path(__file__).resolve().parents[2] / "policies" / "examples" / "docker-like.json"

CRAFTED = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 13,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write", "chown32"], "action": "SCMP_ACT_ALLOW"},  # 0
        {"name": "getppid", "action": "SCMP_ACT_KILL"},  # 1
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO"},  # 2
        {"names": ["getpid"], "action": "SCMP_ACT_TRACE"},  # 3
        {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 9},  # 4
        {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},  # 5: == default
        {
            "names": ["ioctl"],
            "action": "SCMP_ACT_ALLOW",
            "args": [  # 6: two indexes: AND
                {"index": 1, "value": 21505, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 0, "op": "SCMP_CMP_NE"},
            ],
        },
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [  # 7: index 0 twice: OR
                {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 5, "op": "SCMP_CMP_GT"},
            ],
        },
        {
            "names": ["mmap"],
            "action": "SCMP_ACT_TRAP",
            "args": [  # 8
                {"index": 2, "value": 4, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}
            ],
        },
        {"names": ["kill"], "action": "SCMP_ACT_LOG", "includes": {"caps": ["CAP_KILL"]}},  # 9
        {
            "names": ["mount"],
            "action": "SCMP_ACT_ALLOW",  # 10
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {
            "names": ["riscv_flush_icache"],
            "action": "SCMP_ACT_ALLOW",  # 12
            "includes": {"arches": ["riscv64"]},
        },
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}},
        {
            "names": ["pidfd_open"],
            "action": "SCMP_ACT_KILL_PROCESS",  # 14
            "excludes": {"minKernel": "5.3"},
        },
        {"names": ["openat2"], "action": "SCMP_ACT_NOTIFY", "comment": "ask the supervisor"},
        {"names": ["futex"], "action": "SCMP_ACT_KILL_THREAD"},  # 16
    ],
}


def load(profile, tmp_path, **target):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile) if not isinstance(profile, str) else profile)
    return load_policy_result(path, **target)


def test_crafted_profile_on_x86_64_without_caps(tmp_path):
    result = load(CRAFTED, tmp_path, arch="x86_64", caps=[], kernel_version="5.10.0-21-amd64")
    personality = [ArgCheck(0, Op.EQ, 0), ArgCheck(0, Op.EQ, 8), ArgCheck(1, Op.GT, 5)]
    expected_rules = (
        Rule(("read", "write"), ALLOW),  # chown32 is not an x86_64 syscall: skipped
        Rule(("getppid",), KILL_THREAD),  # SCMP_ACT_KILL is KILL_THREAD
        Rule(("uname",), EPERM),  # ERRNO without errnoRet: EPERM
        Rule(("getpid",), 0x7FF00001),  # TRACE without errnoRet: EPERM too
        Rule(("gettid",), 0x7FF00009),
        # close: same action as the default, dropped as runc drops it
        Rule(("ioctl",), ALLOW, (ArgCheck(1, Op.EQ, 21505), ArgCheck(2, Op.NE, 0))),
        *(Rule(("personality",), ALLOW, (check,)) for check in personality),
        Rule(("mmap",), TRAP, (ArgCheck(2, Op.MASKED_EQ, 4, 4),)),
        # kill: needs CAP_KILL; mount: kept because CAP_SYS_ADMIN is absent
        Rule(("mount",), ALLOW),
        Rule(("arch_prctl",), ALLOW),
        Rule(("ptrace",), ALLOW),  # 5.10 >= 5.8; pidfd_open excluded on >= 5.3
        Rule(("openat2",), USER_NOTIF),
        Rule(("futex",), KILL_THREAD),
    )
    # openat2 (437) is the largest number named by an entry that survived filtering.
    assert result.policy.kernel == Section(
        default=EACCES, rules=expected_rules, mismatch_action=KILL_THREAD, enosys_above=437
    )
    assert result.policy.gates is None
    assert result.policy.flags == ("SECCOMP_FILTER_FLAG_LOG",)
    assert result.rule_paths[Layer.KERNEL] == (
        "syscalls[0]",
        "syscalls[1]",
        "syscalls[2]",
        "syscalls[3]",
        "syscalls[4]",
        "syscalls[6]",
        "syscalls[7].args[0]",
        "syscalls[7].args[1]",
        "syscalls[7].args[2]",
        "syscalls[8]",
        "syscalls[10]",
        "syscalls[11]",
        "syscalls[13]",
        "syscalls[15]",
        "syscalls[16]",
    )
    assert [(w.key_path, "runc ORs ALL its checks" in w.message) for w in result.warnings] == [
        ("syscalls[7]", True)]


def test_crafted_profile_on_aarch64_with_caps_and_an_old_kernel(tmp_path):
    result = load(
        CRAFTED, tmp_path, arch="aarch64", caps=["cap_sys_admin", "KILL"], kernel_version=(5, 2)
    )
    names = [rule.names for rule in result.policy.kernel.rules]
    assert ("kill",) in names  # CAP_KILL given ("KILL" is normalised to CAP_KILL)
    assert ("mount",) not in names  # excluded by CAP_SYS_ADMIN
    assert ("arch_prctl",) not in names and ("riscv_flush_icache",) not in names
    assert ("ptrace",) not in names  # 5.2 < 5.8
    assert ("pidfd_open",) in names  # excludes minKernel 5.3 does not apply on 5.2
    # aarch64 is not in "architectures", so runc adds no -ENOSYS stub for it.
    assert result.policy.kernel.enosys_above is None


def test_32_bit_arch_compares_32_bit_args(tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["ioctl"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 0x1_0000_5401, "op": "SCMP_CMP_EQ"}],
            }
        ],
    }
    rule = load(profile, tmp_path, arch="x86").policy.kernel.rules[0]
    assert rule.args == (ArgCheck(1, Op.EQ, 0x5401, None, 32),)
    rule64 = load(profile, tmp_path, arch="x86_64").policy.kernel.rules[0]
    assert rule64.args == (ArgCheck(1, Op.EQ, 0x1_0000_5401, None, 64),)


def test_runc_ors_every_check_when_one_index_repeats():
    with pytest.warns(PolicyWarning, match="runc ORs ALL its checks"):
        section = load_policy(json.dumps(CRAFTED), arch="x86_64", kernel_version="6.1").kernel
    arch = get_arch("x86_64")
    personality = arch.number("personality")

    def call(*args):
        return decide(section, arch, SeccompData(personality, arch.audit_arch, 0, args))

    assert call(0, 0, 0, 0, 0, 0) == ALLOW
    assert call(8, 0, 0, 0, 0, 0) == ALLOW
    assert call(3, 6, 0, 0, 0, 0) == ALLOW  # only the index-1 check holds: OR
    assert call(3, 5, 0, 0, 0, 0) == EACCES


def test_archmap_picks_the_targets_entry(tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [{"names": ["read", "getppid"], "action": "SCMP_ACT_ALLOW"}],
    }
    # getppid: 110 on x86_64, 173 on aarch64, 64 on x86; read: 0, 63, 3.
    assert load(profile, tmp_path, arch="x86_64").policy.kernel.enosys_above == 110
    assert load(profile, tmp_path, arch="aarch64").policy.kernel.enosys_above == 173
    result = load(profile, tmp_path, arch="x86")  # a sub-arch only: no entry of its own
    assert result.policy.kernel.enosys_above is None
    assert any(n.key_path == "archMap" for n in result.notes)


@pytest.mark.parametrize(
    ("default", "stub"),
    [
        ("SCMP_ACT_ALLOW", None),
        ("SCMP_ACT_LOG", None),
        ("SCMP_ACT_TRACE", None),
        ("SCMP_ACT_ERRNO", 3),
        ("SCMP_ACT_KILL", 3),
        ("SCMP_ACT_TRAP", 3),
    ],
)
def test_enosys_stub_only_for_non_permissive_defaults(tmp_path, default, stub):
    profile = {
        "defaultAction": default,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["close", "read"], "action": "SCMP_ACT_KILL_PROCESS"}],
    }
    assert load(profile, tmp_path, arch="x86_64").policy.kernel.enosys_above == stub


def test_flags_default_to_spec_allow_like_runc(tmp_path):
    base = {"defaultAction": "SCMP_ACT_ALLOW"}
    assert load(base, tmp_path, arch="x86_64").policy.flags == ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",)
    assert load({**base, "flags": []}, tmp_path, arch="x86_64").policy.flags == ()
    flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    assert load({**base, "flags": flags}, tmp_path, arch="x86_64").policy.flags == tuple(flags)


def test_keys_match_case_insensitively_like_go(tmp_path):
    profile = {
        "DefaultAction": "SCMP_ACT_ERRNO",
        "SYSCALLS": [{"Names": ["read"], "ACTION": "SCMP_ACT_ALLOW"}],
    }
    section = load(profile, tmp_path, arch="x86_64").policy.kernel
    assert section.rules == (Rule(("read",), ALLOW),)
    assert section.default == EPERM


def test_warnings_for_ignored_fields(tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "x",
        "defaultActon": "typo",
        "syscalls": [
            {"names": ["reed"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["read"], "action": "SCMP_ACT_LOG", "errnoRet": 3},
            {"names": [], "action": "SCMP_ACT_LOG"},
        ],
    }
    result = load(profile, tmp_path, arch="x86_64")
    warned = {w.key_path: w.message for w in result.warnings}
    assert "seccomp agent" in warned["listenerPath"]
    assert "listenerMetadata" in warned
    assert "did you mean 'defaultAction'" in warned["defaultActon"]
    assert "did you mean 'read'" in warned["syscalls[0].names[0]"]
    assert "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE" in warned["syscalls[1].errnoRet"]
    assert "does nothing" in warned["syscalls[2]"]
    assert all(w.source.endswith("profile.json") for w in result.warnings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_policy(tmp_path / "profile.json", arch="x86_64")
    assert len(caught) == len(result.warnings)
    assert all(issubclass(w.category, PolicyWarning) for w in caught)
    assert any("listenerPath" in str(w.message) for w in caught)


def test_target_defaults_and_errors():
    target = OciTarget.resolve()
    assert target.caps == frozenset()
    assert isinstance(target.kernel_version, tuple) and target.kernel_version >= (3, 0)
    assert parse_kernel_version("6.18.44-fc-v669") == (6, 18)
    with pytest.raises(OciTargetError, match="kernel version"):
        OciTarget.resolve(arch="x86_64", kernel_version="six")
    with pytest.raises(OciTargetError, match="unknown arch"):
        OciTarget.resolve(arch="vax")
    with pytest.raises(OciTargetError, match="kernel arch"):
        OciTarget.resolve(arch="callgate")


# --- the Docker-like example profile (~350 syscalls) --------------------------------


def docker(**target):
    return load_policy(DOCKER_LIKE, **target).kernel


def verdict(section, arch_name, name_or_nr, *args):
    arch = get_arch(arch_name)
    nr = name_or_nr if isinstance(name_or_nr, int) else arch.number(name_or_nr)
    padded = (*args, *(0,) * (6 - len(args)))
    return decide(section, arch, SeccompData(nr, arch.audit_arch, 0, padded))


def test_docker_like_profile_unprivileged_x86_64():
    section = docker(arch="x86_64", kernel_version="6.18")
    assert section.default == EPERM
    assert section.enosys_above == 456  # futex_requeue, the newest name it lists
    allowed = {
        n for rule in section.rules if not rule.args and rule.action == ALLOW for n in rule.names
    }
    assert len(allowed) > 290
    assert {"read", "write", "execve", "futex_requeue", "arch_prctl", "ptrace"} <= allowed
    assert not {"chown32", "_llseek", "mount", "reboot", "riscv_flush_icache"} & allowed
    for name in ("read", "openat", "arch_prctl", "ptrace"):
        assert verdict(section, "x86_64", name) == ALLOW, name
    for name in ("mount", "reboot", "init_module", "bpf", "unshare", "setns"):
        assert verdict(section, "x86_64", name) == EPERM, name
    assert verdict(section, "x86_64", "clone", 0x11) == ALLOW  # SIGCHLD
    assert verdict(section, "x86_64", "clone", 0x10000000 | 0x11) == EPERM  # CLONE_NEWUSER
    assert verdict(section, "x86_64", "clone3") == ENOSYS
    assert verdict(section, "x86_64", "socket", 2) == ALLOW
    assert verdict(section, "x86_64", "socket", 40) == EPERM  # AF_VSOCK
    assert verdict(section, "x86_64", "personality", 8) == ALLOW
    assert verdict(section, "x86_64", "personality", 3) == EPERM
    assert verdict(section, "x86_64", 457) == ENOSYS  # newer than the profile
    assert verdict(section, "x86_64", 1000) == ENOSYS


def test_docker_like_profile_with_cap_sys_admin_and_old_kernel():
    section = docker(arch="x86_64", caps=["CAP_SYS_ADMIN"], kernel_version="4.4")
    assert verdict(section, "x86_64", "mount") == ALLOW
    assert verdict(section, "x86_64", "clone3") == ALLOW
    assert verdict(section, "x86_64", "clone", 0x10000000) == ALLOW
    assert verdict(section, "x86_64", "ptrace") == EPERM  # before 4.8 it needs CAP_SYS_PTRACE


@pytest.mark.parametrize(
    ("arch", "present", "absent"),
    [
        ("aarch64", "read", "arch_prctl"),
        ("riscv64", "riscv_flush_icache", "arch_prctl"),
        ("s390x", "s390_runtime_instr", "riscv_flush_icache"),
        ("ppc64le", "swapcontext", "s390_runtime_instr"),
    ],
)
def test_docker_like_profile_on_other_arches(arch, present, absent):
    section = docker(arch=arch, kernel_version="6.1")
    assert verdict(section, arch, present) == ALLOW
    assert all(absent not in rule.names for rule in section.rules)
    assert section.enosys_above is not None


def test_docker_like_profile_s390x_checks_clone_flags_in_arg1():
    section = docker(arch="s390x", kernel_version="6.1")
    clone = [rule for rule in section.rules if "clone" in rule.names]
    assert [rule.args for rule in clone] == [(ArgCheck(1, Op.MASKED_EQ, 2114060288, 0),)]


# --- bad profiles: every error names the file and the key path ------------------------


def syscall(**entry):
    return {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [entry]}


BAD = [
    ("{not json", "", "not valid JSON"),
    ("[1, 2]", "", "JSON object"),
    ({"syscalls": []}, "defaultAction", "is required"),
    ({"defaultAction": "SCMP_ACT_ALLOWED"}, "defaultAction", "did you mean 'SCMP_ACT_ALLOW'"),
    ({"defaultAction": 1}, "defaultAction", "unknown action"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}, "defaultErrnoRet", "0..4095"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "defaultErrnoRet", "0..4095"),
    ({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 70000}, "defaultErrnoRet", "0..65535"),
    (
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
        },
        "archMap",
        "use one",
    ),
    (
        {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["X86_64"]},
        "architectures[0]",
        "unknown architecture",
    ),
    (
        {"defaultAction": "SCMP_ACT_ERRNO", "architectures": "SCMP_ARCH_X86_64"},
        "architectures",
        "array of strings",
    ),
    (
        {"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86-64"}]},
        "archMap[0].architecture",
        "unknown architecture",
    ),
    (
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["i386"]}],
        },
        "archMap[0].subArchitectures[0]",
        "unknown architecture",
    ),
    ({"defaultAction": "SCMP_ACT_ERRNO", "archMap": {}}, "archMap", "must be an array"),
    (
        {"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
        "flags[0]",
        "unknown filter flag",
    ),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}, "syscalls", "must be an array"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": ["read"]}, "syscalls[0]", "object"),
    (syscall(name="read", names=["write"], action="SCMP_ACT_ALLOW"), "syscalls[0].name", "use one"),
    (syscall(names=["read"]), "syscalls[0].action", "is required"),
    (syscall(names=["read"], action="ALLOW"), "syscalls[0].action", "SCMP_ACT_ALLOW"),
    (syscall(names="read", action="SCMP_ACT_ALLOW"), "syscalls[0].names", "array of strings"),
    (syscall(names=["read", ""], action="SCMP_ACT_ALLOW"), "syscalls[0].names[1]", "non-empty"),
    (
        syscall(names=["read"], action="SCMP_ACT_ERRNO", errnoRet=4096),
        "syscalls[0].errnoRet",
        "0..4095",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ERRNO", errnoRet="1"),
        "syscalls[0].errnoRet",
        "0..4095",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ALLOW", args={}),
        "syscalls[0].args",
        "must be an array",
    ),
    (syscall(names=["read"], action="SCMP_ACT_ALLOW", args=[3]), "syscalls[0].args[0]", "object"),
    (
        syscall(
            names=["read"],
            action="SCMP_ACT_ALLOW",
            args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}],
        ),
        "syscalls[0].args[0].index",
        "0..5",
    ),
    (
        syscall(
            names=["read"],
            action="SCMP_ACT_ALLOW",
            args=[{"index": 0, "value": 1, "op": "SCMP_CMP_LTE"}],
        ),
        "syscalls[0].args[0].op",
        "SCMP_CMP_LE",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ALLOW", args=[{"index": 0, "value": 1}]),
        "syscalls[0].args[0].op",
        "unknown operator",
    ),
    (
        syscall(
            names=["read"],
            action="SCMP_ACT_ALLOW",
            args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}],
        ),
        "syscalls[0].args[0].value",
        "write -1 as 18446744073709551615",
    ),
    (
        syscall(
            names=["read"],
            action="SCMP_ACT_ALLOW",
            args=[{"index": 0, "value": 1.5, "op": "SCMP_CMP_EQ"}],
        ),
        "syscalls[0].args[0].value",
        "unsigned 64-bit",
    ),
    (
        syscall(
            names=["read"],
            action="SCMP_ACT_ALLOW",
            args=[{"index": 0, "value": 1, "valueTwo": 2**64, "op": "SCMP_CMP_MASKED_EQ"}],
        ),
        "syscalls[0].args[0].valueTwo",
        "unsigned 64-bit",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ALLOW", includes={"minKernel": "5"}),
        "syscalls[0].includes.minKernel",
        "<kernel>.<major>",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ALLOW", excludes={"minKernel": "0.0"}),
        "syscalls[0].excludes.minKernel",
        "<kernel>.<major>",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ALLOW", includes={"minKernel": 5.8}),
        "syscalls[0].includes.minKernel",
        "<kernel>.<major>",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ALLOW", includes={"caps": "CAP_SYS_ADMIN"}),
        "syscalls[0].includes.caps",
        "array of strings",
    ),
    (
        syscall(names=["read"], action="SCMP_ACT_ALLOW", excludes=["amd64"]),
        "syscalls[0].excludes",
        "object",
    ),
]


@pytest.mark.parametrize(("profile", "key_path", "fragment"), BAD)
def test_bad_profiles_name_file_key_path_and_what_is_allowed(tmp_path, profile, key_path, fragment):
    with pytest.raises(PolicyError) as info:
        load(profile, tmp_path, arch="x86_64")
    err = info.value
    path = str(tmp_path / "profile.json")
    assert any(p.key_path == key_path and fragment in p.message for p in err.problems), str(err)
    assert all(p.source == path for p in err.problems)
    assert path in str(err)


def test_hostile_json_nesting_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="not valid JSON"):
        load("[" * 200_000 + "]" * 200_000, tmp_path, arch="x86_64", format="oci")


EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"


def test_runc_quirks_example_means_what_its_comments_say():
    result = load_policy_result(EXAMPLES / "runc-quirks.json", arch="x86_64")
    section = result.policy.kernel
    assert section.default == EPERM and result.policy.flags == ()
    assert section.rules == (
        Rule(("read", "write", "close", "exit_group"), ALLOW),
        Rule(("personality",), ALLOW, (ArgCheck(0, Op.EQ, 0),)),
        Rule(("personality",), ALLOW, (ArgCheck(0, Op.EQ, 8),)),
        Rule(("ioctl",), ALLOW, (ArgCheck(0, Op.LE, 2), ArgCheck(1, Op.EQ, 21505))),
        Rule(("getppid",), KILL_THREAD),
        Rule(("clone3",), ENOSYS),
    )
    # clone3 is 435 on x86_64: the largest number the profile names there.
    assert section.enosys_above == 435
    assert [w.key_path for w in result.warnings] == ["syscalls[1]"]


def test_nulls_read_as_go_zero_values(tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": None, "flags": None,
               "architectures": None, "syscalls": [
                   {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": None,
                    "includes": None, "excludes": {"minKernel": None},
                    "args": [{"index": None, "value": None, "op": "SCMP_CMP_EQ"}]},
                   {"names": None, "action": "SCMP_ACT_ALLOW", "args": None}]}
    result = load(profile, tmp_path, arch="x86_64")
    assert result.policy.kernel == Section(
        default=EPERM, rules=(Rule(("read",), ALLOW, (ArgCheck(0, Op.EQ, 0),)),),
        mismatch_action=KILL_THREAD)
    assert result.policy.flags == ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",)
    assert load({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": None}, tmp_path,
                arch="x86_64").policy.kernel.rules == ()
    with pytest.raises(PolicyError, match=r"syscalls\[0\]\.args\[0\]\.index"):
        load(syscall(names=["read"], action="SCMP_ACT_ALLOW",
                     args=[{"index": True, "op": "SCMP_CMP_EQ"}]), tmp_path, arch="x86_64")


def test_caps_as_one_string_and_bad_kernel_version_types():
    assert OciTarget.resolve(arch="x86_64", caps="sys_admin, CAP_KILL").caps == {
        "CAP_SYS_ADMIN", "CAP_KILL"}
    with pytest.raises(OciTargetError):
        parse_kernel_version([5, 8])
    with pytest.raises(OciTargetError):
        parse_kernel_version((5, -1))


def test_masked_eq_datum_is_masked_like_libseccomp(tmp_path):
    profile = syscall(names=["mmap"], action="SCMP_ACT_ALLOW", args=[
        {"index": 2, "value": 4, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}])
    result = load(profile, tmp_path, arch="x86_64")
    assert result.policy.kernel.rules[0].args == (ArgCheck(2, Op.MASKED_EQ, 4, 4),)
    assert [n.key_path for n in result.notes] == ["syscalls[0].args[0].valueTwo"]
