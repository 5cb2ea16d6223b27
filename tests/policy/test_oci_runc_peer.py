"""An OCI profile means what runc + libseccomp make of it.

For profiles without includes/excludes, the test builds the filter the way runc's
``InitSeccomp``/``matchCall`` do (transcribed below, one step per line of the Go
code), lets libseccomp compile it, prepends runc's ``-ENOSYS`` stub rule, and
runs the result through callgate's BPF interpreter. The section callgate loads
from the same JSON must decide every call the same way (reference evaluator).
"""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import pytest
from conftest import require

from callgate.arch import native_arch
from callgate.bpf.insn import unpack
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import load_policy_text
from callgate.policy.reference import decide

try:
    import pyseccomp
except ImportError:
    pyseccomp = None

ARCH = native_arch()
EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"

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
            if len(set(indexes)) < len(indexes):  # hasMultipleArgs: one rule per condition
                for cond in conds:
                    flt.add_rule(action, nr, cond)
            else:
                flt.add_rule(action, nr, *conds)
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        program = unpack(out.read())
    stub = largest if profile["defaultAction"] not in PERMISSIVE else None
    return program, stub


def runc_decides(program, stub, nr, args):
    if stub is not None and nr > stub:
        return 0x00050000 | errno.ENOSYS
    return interpret(program, SeccompData.make(nr, ARCH.audit_arch, list(args))).ret


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
    ],
}
ARG_VALUES = [0, 1, 2, 3, 4, 5, 8, 9, 40, 21505, 0xFFFFFFFF, 2**32, 2**64 - 1]


@pytest.mark.parametrize("profile", [CRAFTED, json.loads((EXAMPLES / "runc-quirks.json")
                                                         .read_text())],
                         ids=["crafted", "runc-quirks"])
def test_same_decisions_as_runc_with_libseccomp(profile):
    require(pyseccomp is not None, "pyseccomp (libseccomp)")
    if pyseccomp.system_arch() != ARCH.audit_arch:
        pytest.skip("libseccomp's native arch differs from callgate's native arch table")
    program, stub = runc_program(profile)
    section = load_policy_text(json.dumps(profile), arch=ARCH.name, format="oci").policy.kernel
    named = {ARCH.numbers[n] for e in profile["syscalls"] for n in e["names"]
             if n in ARCH.numbers}
    others = sorted(set(ARCH.numbers.values()) - named)
    top = max(ARCH.numbers.values())
    grid = [(a0, a1, a2, 0, 0, 0) for a0 in ARG_VALUES for a1 in (0, 3, 9, 21505, 2**64 - 1)
            for a2 in (0, 4, 5)]
    cases = [(nr, args) for nr in sorted(named) for args in grid]
    cases += [(nr, args) for nr in [*others, top + 1, top + 2, top + 100]
              for args in ((0,) * 6, (2**64 - 1,) * 6)]
    for nr, args in cases:
        expected = runc_decides(program, stub, nr, args)
        data = SeccompData.make(nr, ARCH.audit_arch, list(args))
        assert decide(section, ARCH, data) == expected, (ARCH.name_of(nr), args)
    assert len(cases) > 1000
