"""An OCI profile means what Docker + runc + libseccomp make of it.

The test resolves the profile the way moby's ``setupSeccomp`` does, builds the
filter the way runc's ``InitSeccomp``/``matchCall`` do (both transcribed below,
one step per line of the Go code), lets libseccomp compile it, prepends runc's
``-ENOSYS`` stub rule, and runs the result through callgate's BPF interpreter.
The section callgate loads from the same JSON must decide every call the same
way (reference evaluator).
"""

from __future__ import annotations

import contextlib
import errno
import json
import tempfile
from pathlib import Path

import pytest
from conftest import require

from callgate.arch import native_arch
from callgate.bpf import compile_program
from callgate.bpf.insn import unpack
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import load_policy_result, load_policy_text
from callgate.policy.lint import lint
from callgate.policy.reference import decide

try:
    import pyseccomp
except ImportError:
    pyseccomp = None

ARCH = native_arch()
EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
DOCKER_LIKE = EXAMPLES / "docker-like.json"

# runc's getAction: the libseccomp action for each SCMP_ACT_* and its errnoRet default.
RUNC_ACTIONS = {
    "SCMP_ACT_KILL": lambda e: 0x00000000,
    "SCMP_ACT_KILL_THREAD": lambda e: 0x00000000,
    "SCMP_ACT_KILL_PROCESS": lambda e: 0x80000000,
    "SCMP_ACT_TRAP": lambda e: 0x00030000,
    "SCMP_ACT_ERRNO": lambda e: 0x00050000 | (errno.EPERM if e is None else e),
    "SCMP_ACT_TRACE": lambda e: 0x7FF00000 | (errno.EPERM if e is None else e),
    "SCMP_ACT_ALLOW": lambda e: 0x7FFF0000,
    "SCMP_ACT_LOG": lambda e: 0x7FFC0000,
}
PERMISSIVE = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"}


MOBY_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def moby_resolve(profile: dict, caps: list[str], kernel: tuple[int, int]) -> dict:
    """moby's setupSeccomp: keep the entries whose includes/excludes hold on this host."""
    arch = MOBY_ARCH[ARCH.name]

    def min_kernel_ok(text):
        major, minor = (int(x) for x in text.split("."))
        return kernel >= (major, minor)

    kept = []
    for call in profile["syscalls"]:
        exc, inc = call.get("excludes") or {}, call.get("includes") or {}
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        if exc.get("minKernel") and min_kernel_ok(exc["minKernel"]):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not min_kernel_ok(inc["minKernel"]):
            continue
        kept.append(call)
    return {**profile, "syscalls": kept}


def runc_program(profile: dict):
    """libseccomp's program for ``profile`` as runc builds it, and runc's stub bound."""
    ops = {"SCMP_CMP_EQ": pyseccomp.EQ, "SCMP_CMP_NE": pyseccomp.NE, "SCMP_CMP_LT": pyseccomp.LT,
           "SCMP_CMP_LE": pyseccomp.LE, "SCMP_CMP_GT": pyseccomp.GT, "SCMP_CMP_GE": pyseccomp.GE,
           "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ}
    default = RUNC_ACTIONS[profile["defaultAction"]](profile.get("defaultErrnoRet"))
    flt = pyseccomp.SyscallFilter(default)
    largest = 0
    for entry in profile["syscalls"]:
        for name in entry["names"]:
            nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            if nr >= 0:
                largest = max(largest, nr)  # findLastSyscalls: every entry counts
            action = RUNC_ACTIONS[entry["action"]](entry.get("errnoRet"))
            if action == default:
                continue  # "This rule is redundant, silently skip it"
            if nr < 0:
                continue  # "unknown seccomp syscall ignored"
            conds = [pyseccomp.Arg(a["index"], ops[a["op"]], a.get("value", 0),
                                   a.get("valueTwo", 0)) for a in entry.get("args") or []]
            indexes = [a["index"] for a in entry.get("args") or []]
            # FileExistsError: libseccomp already has this very rule (a second entry).
            with contextlib.suppress(FileExistsError):
                if len(set(indexes)) < len(indexes):  # hasMultipleArgs: a rule per condition
                    for cond in conds:
                        flt.add_rule(action, nr, cond)
                else:
                    flt.add_rule(action, nr, *conds)
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        program = unpack(out.read())
    # patchbpf's findLastSyscalls: only for the architectures the profile lists, and only
    # when some syscall was found.
    # (moby turns an archMap into the target's architecture and its sub-architectures.)
    native = "SCMP_ARCH_" + {"x86_64": "X86_64", "aarch64": "AARCH64"}.get(ARCH.name, "?")
    listed = set(profile.get("architectures") or ())
    listed |= {entry["architecture"] for entry in profile.get("archMap") or ()}
    stub = (largest if profile["defaultAction"] not in PERMISSIVE and largest
            and native in listed else None)
    return program, stub


CRAFTED = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 13,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
    "syscalls": [
        {"names": ["read", "write", "chown32", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["getppid"], "action": "SCMP_ACT_KILL"},
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["getpid"], "action": "SCMP_ACT_TRACE"},
        {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 2, "op": "SCMP_CMP_LE"},
            {"index": 1, "value": 21505, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mmap", "mprotect"], "action": "SCMP_ACT_TRAP", "args": [
            {"index": 2, "value": 4, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_LOG", "args": [
            {"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
        {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS", "args": [
            {"index": 1, "value": 9, "op": "SCMP_CMP_GE"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["madvise"], "action": "SCMP_ACT_LOG", "args": [  # datum outside the mask
            {"index": 2, "value": 4, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}]},
        # The default's own action: dropped by runc, so it does not veto the ioctl rule.
        {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
    ],
}
ARG_VALUES = [0, 1, 2, 3, 4, 5, 8, 9, 40, 21505, 0xFFFFFFFF, 2**32, 2**64 - 1]


def assert_same_decisions(profile: dict, section) -> None:
    program, stub = runc_program(profile)
    fast = compile_program(program)
    with_args = {ARCH.numbers[n] for e in profile["syscalls"] if e.get("args")
                 for n in e["names"] if n in ARCH.numbers}
    others = sorted(set(ARCH.numbers.values()) - with_args)
    top = max(ARCH.numbers.values())
    grid = [(a0, a1, a2, 0, 0, 0) for a0 in ARG_VALUES for a1 in (0, 3, 9, 21505, 2**64 - 1)
            for a2 in (0, 4, 5)]
    cases = [(nr, args) for nr in sorted(with_args) for args in grid]
    cases += [(nr, args) for nr in [*others, top + 1, top + 2, top + 100]
              for args in ((0,) * 6, (2**64 - 1,) * 6)]
    for nr, args in cases:
        if stub is not None and nr > stub:
            expected = 0x00050000 | errno.ENOSYS  # runc's stub runs before libseccomp's filter
        else:
            expected = fast(nr, ARCH.audit_arch, 0, *args)
        data = SeccompData.make(nr, ARCH.audit_arch, list(args))
        assert decide(section, ARCH, data) == expected, (ARCH.name_of(nr), args)
    assert len(cases) > 700


def native_libseccomp():
    require(pyseccomp is not None, "pyseccomp (libseccomp)")
    if pyseccomp.system_arch() != ARCH.audit_arch or ARCH.name not in MOBY_ARCH:
        pytest.skip("libseccomp's native arch differs from callgate's native arch table")


@pytest.mark.parametrize(("caps", "kernel"), [
    ([], (6, 18)), ([], (4, 4)), (["CAP_SYS_ADMIN"], (6, 1)),
    (["CAP_SYS_PTRACE", "CAP_BPF", "CAP_SYS_ADMIN"], (5, 10))])
def test_docker_like_profile_decides_like_docker_runc_libseccomp(caps, kernel):
    native_libseccomp()
    profile = json.loads(DOCKER_LIKE.read_text())
    section = load_policy_text(json.dumps(profile), arch=ARCH.name, caps=caps,
                               kernel_version=kernel, format="oci").policy.kernel
    assert_same_decisions(moby_resolve(profile, caps, kernel), section)


@pytest.mark.parametrize("profile", [CRAFTED, json.loads((EXAMPLES / "runc-quirks.json")
                                                         .read_text())],
                         ids=["crafted", "runc-quirks"])
def test_same_decisions_as_runc_with_libseccomp(profile):
    native_libseccomp()
    section = load_policy_text(json.dumps(profile), arch=ARCH.name, format="oci").policy.kernel
    assert_same_decisions(profile, section)


def test_conflicting_entries_are_where_docker_differs_and_the_lint_says_so():
    """libseccomp lets an unconditional ALLOW replace a conditional ERRNO for one syscall;
    callgate keeps the most restrictive. The lint warns about exactly this overlap."""
    native_libseccomp()
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
         "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]}]}
    program, _ = runc_program(profile)
    read = ARCH.number("read")
    assert compile_program(program)(read, ARCH.audit_arch, 0, 3, 0, 0, 0, 0, 0) == 0x7FFF0000
    result = load_policy_result(json.dumps(profile), arch=ARCH.name, format="oci")
    data = SeccompData.make(read, ARCH.audit_arch, [3])
    assert decide(result.policy.kernel, ARCH, data) == 0x00050005
    warnings = [f for f in lint(result, ARCH) if f.level == "warning"]
    assert [(f.key_path, "libseccomp under runc does not" in f.message) for f in warnings] == [
        ("syscalls[1]", True)]
