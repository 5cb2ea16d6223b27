"""Hostile OCI profiles and TOML policies: a clear PolicyError or a valid model, never a crash.

Hypothesis builds documents from the real schema's keys and plausible values, mixed
with wrong types, so the generated input reaches every branch of the loaders.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from callgate.policy import PolicyError, Section, load_policy_text
from callgate.policy.lint import lint
from callgate.policy.oci import OCI_ACTIONS

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=8),
    st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_CMP_EQ",
                     "SCMP_CMP_MASKED_EQ", "SCMP_ARCH_X86_64", "amd64", "CAP_SYS_ADMIN",
                     "5.8", "0.0", "read", "reed", "allow", "errno(EPERM)", "eq", "masked_eq",
                     "SECCOMP_FILTER_FLAG_LOG", "kill_process", "trace(70000)"]),
)
OCI_KEYS = ["defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
            "listenerPath", "names", "name", "action", "errnoRet", "args", "includes",
            "excludes", "caps", "arches", "minKernel", "index", "value", "valueTwo", "op",
            "architecture", "subArchitectures", "comment", "bogus"]
TOML_KEYS = ["gates", "kernel", "default", "rules", "arch_mismatch", "app_gates", "flags",
             "names", "action", "args", "comment", "index", "op", "value", "value2", "width",
             "bogus"]


def documents(keys):
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.sampled_from(keys), inner, max_size=5)),
        max_leaves=30,
    )


def check_outcome(load):
    try:
        result = load()
    except PolicyError as err:
        assert err.problems and all(p.source == "hostile" for p in err.problems)
        assert str(err)
        return
    for layer in ("gates", "kernel"):
        section = result.policy.section(layer)
        assert section is None or isinstance(section, Section)
    lint(result)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(OCI_KEYS), documents(OCI_KEYS), max_size=6))
def test_hostile_oci_profiles(doc):
    doc.setdefault("defaultAction", "SCMP_ACT_ERRNO")
    text = json.dumps(doc)
    check_outcome(lambda: load_policy_text(text, source="hostile", arch="x86_64",
                                           format="oci"))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return '""'
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(TOML_KEYS), documents(TOML_KEYS), max_size=4))
def test_hostile_toml_policies(doc):
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items()]
    text = "\n".join(lines) + "\n"
    check_outcome(lambda: load_policy_text(text, source="hostile", format="toml"))


def sometimes(valid, other=None):
    """Mostly a plausible value, sometimes anything at all."""
    odd = other if other is not None else SCALARS
    return st.integers(0, 15).flatmap(lambda n: odd if n == 0 else valid)


OCI_ARG = st.fixed_dictionaries({}, optional={
    "index": sometimes(st.integers(0, 5)),
    "value": sometimes(st.integers(0, 2**64 - 1)),
    "valueTwo": sometimes(st.integers(0, 2**64 - 1)),
    "op": sometimes(st.sampled_from(["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT",
                                     "SCMP_CMP_MASKED_EQ", "SCMP_CMP_GE"])),
})
OCI_FILTER = st.fixed_dictionaries({}, optional={
    "caps": sometimes(st.lists(st.sampled_from(["CAP_SYS_ADMIN", "CAP_KILL"]), max_size=2)),
    "arches": sometimes(st.lists(st.sampled_from(["amd64", "arm64", "x86"]), max_size=2)),
    "minKernel": sometimes(st.sampled_from(["4.8", "5.10", "7.0"])),
})
OCI_ENTRY = st.fixed_dictionaries({
    "names": sometimes(st.lists(sometimes(st.sampled_from(["read", "write", "personality",
                                                           "chown32", "arch_prctl"])),
                                max_size=4)),
    "action": sometimes(st.sampled_from(list(OCI_ACTIONS))),
}, optional={
    "name": sometimes(st.sampled_from(["read", "ioctl"])),
    "errnoRet": sometimes(st.integers(0, 4095)),
    "args": sometimes(st.lists(OCI_ARG, max_size=3)),
    "includes": sometimes(OCI_FILTER),
    "excludes": sometimes(OCI_FILTER),
})
OCI_PROFILE = st.fixed_dictionaries(
    {"defaultAction": sometimes(st.sampled_from(list(OCI_ACTIONS)))},
    optional={
        "defaultErrnoRet": sometimes(st.integers(0, 4095)),
        "architectures": sometimes(st.lists(st.sampled_from(["SCMP_ARCH_X86_64",
                                                             "SCMP_ARCH_AARCH64"]))),
        "ArchMap": sometimes(st.lists(st.fixed_dictionaries(
            {"architecture": st.sampled_from(["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"])},
            optional={"subArchitectures": st.lists(st.sampled_from(["SCMP_ARCH_X86"]))}),
            max_size=2)),
        "flags": sometimes(st.lists(st.sampled_from(["SECCOMP_FILTER_FLAG_LOG",
                                                     "SECCOMP_FILTER_FLAG_TSYNC"]))),
        "syscalls": sometimes(st.lists(OCI_ENTRY, max_size=5)),
    })


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OCI_PROFILE, st.sampled_from(["x86_64", "aarch64", "x86"]),
       st.lists(st.sampled_from(["CAP_SYS_ADMIN", "CAP_KILL"])),
       st.sampled_from(["4.4", "6.18"]))
def test_structured_oci_profiles(doc, arch, caps, kernel):
    text = json.dumps(doc)
    check_outcome(lambda: load_policy_text(text, source="hostile", arch=arch, caps=caps,
                                           kernel_version=kernel, format="oci"))


@pytest.mark.parametrize("op", [[], ["SCMP_CMP_EQ"], {}, {"SCMP_CMP_EQ": 1}, None, 7])
def test_oci_arg_op_of_any_json_type(op):
    # An array or object is unhashable: looking it up once crashed with TypeError.
    doc = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 1, "op": op}]}]}
    with pytest.raises(PolicyError, match=r"syscalls\[0\]\.args\[0\]\.op: unknown operator"):
        load_policy_text(json.dumps(doc), source="hostile", arch="x86_64", format="oci")


TOML_ARG = st.fixed_dictionaries({}, optional={
    "index": sometimes(st.integers(0, 5)),
    "op": sometimes(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "masked_eq"])),
    "value": sometimes(st.integers(-(2**31), 2**32 - 1)),
    "value2": sometimes(st.integers(0, 2**32 - 1)),
    "width": sometimes(st.sampled_from([32, 64])),
})
TOML_ACTION = sometimes(st.sampled_from(["allow", "log", "trap", "kill_process", "kill_thread",
                                         "errno(EPERM)", "errno(4095)", "trace(9)",
                                         "user_notif", "ERRNO(EBADF)"]),
                        st.sampled_from(["errno(4096)", "nope", "trace(70000)"]))


def toml_section(names, extra):
    rule = st.fixed_dictionaries({
        "names": sometimes(st.lists(sometimes(st.sampled_from(names[:2])), min_size=1,
                                    max_size=3)),
        "action": sometimes(TOML_ACTION),
    }, optional={
        "args": sometimes(st.lists(TOML_ARG, max_size=3)),
        "comment": sometimes(st.text(max_size=5)),
    })
    return st.fixed_dictionaries({"default": sometimes(TOML_ACTION)}, optional={
        "arch_mismatch": sometimes(TOML_ACTION),
        "rules": sometimes(st.lists(rule, max_size=4)),
        **extra,
    })


TOML_POLICY = st.fixed_dictionaries({}, optional={
    "gates": toml_section(["fd_write", "proc_exit"], {"app_gates": sometimes(
        st.lists(st.sampled_from(["kv_get", "kv_put"]), max_size=2))}),
    "kernel": toml_section(["read", "arch_prctl"], {"flags": sometimes(
        st.lists(st.sampled_from(["log", "tsync", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])))}),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TOML_POLICY)
def test_structured_toml_policies(doc):
    lines = []
    for layer, section in doc.items():
        lines.append(f"[{layer}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in section.items() if k != "rules"]
        for rule in section.get("rules") if isinstance(section.get("rules"), list) else ():
            lines.append(f"[[{layer}.rules]]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in rule.items()]
    check_outcome(lambda: load_policy_text("\n".join(lines) + "\n", source="hostile",
                                           format="toml"))
