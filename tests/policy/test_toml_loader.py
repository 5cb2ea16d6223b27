"""The TOML policy loader: models built by hand, and every bad input named by file + key path."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from callgate.arch import get_arch
from callgate.policy import (
    ArgCheck,
    Op,
    Policy,
    PolicyError,
    Rule,
    Section,
    load_policy,
    load_policy_result,
    load_policy_text,
)
from callgate.policy.lint import lint

ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000
KILL_THREAD = 0x00000000
TRAP = 0x00030000
LOG = 0x7FFC0000
USER_NOTIF = 0x7FC00000
U64 = 2**64 - 1


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


DESIGN_EXAMPLE = """
[gates]
default = "errno(ENOSYS)"       # an action
[[gates.rules]]
names = ["fd_write"]
action = "allow"
args = [{ index = 0, op = "le", value = 2 }]
[kernel]
default = "kill_process"
[[kernel.rules]]
names = ["read", "write"]
action = "allow"
"""


def test_design_example_loads_to_the_hand_written_model(tmp_path):
    path = write(tmp_path, DESIGN_EXAMPLE)
    expected = Policy(
        gates=Section(
            default=0x00050000 | 52,  # WASI ENOSYS is 52
            rules=(Rule(("fd_write",), ALLOW, (ArgCheck(0, Op.LE, 2),)),),
        ),
        kernel=Section(default=KILL_PROCESS, rules=(Rule(("read", "write"), ALLOW),)),
        source=str(path),
    )
    assert load_policy(path) == expected
    assert load_policy(str(path)) == expected


@pytest.mark.parametrize(
    ("layer", "text", "ret"),
    [
        ("kernel", "allow", ALLOW),
        ("kernel", "ALLOW", ALLOW),
        ("kernel", "log", LOG),
        ("kernel", "trap", TRAP),
        ("kernel", "kill_process", KILL_PROCESS),
        ("kernel", "kill_thread", KILL_THREAD),
        ("kernel", "user_notif", USER_NOTIF),
        ("kernel", "errno(EPERM)", 0x00050001),
        ("kernel", "errno(EACCES)", 0x0005000D),
        ("kernel", "errno(38)", 0x00050026),
        ("kernel", "errno(0)", 0x00050000),
        ("kernel", "errno(4095)", 0x00050FFF),
        ("kernel", "trace(7)", 0x7FF00007),
        ("kernel", "trace(65535)", 0x7FF0FFFF),
        # [gates] errno names are WASI's numbering: EPERM 63, EBADF 8, ENOTCAPABLE 76.
        ("gates", "errno(EPERM)", 0x0005003F),
        ("gates", "errno(EBADF)", 0x00050008),
        ("gates", "errno(ENOTCAPABLE)", 0x0005004C),
        ("gates", "errno(1)", 0x00050001),
    ],
)
def test_action_spellings(layer, text, ret):
    names = '"read"' if layer == "kernel" else '"fd_read"'
    policy = load_policy_text(
        f'[{layer}]\ndefault = "{text}"\n[[{layer}.rules]]\nnames = [{names}]\naction = "{text}"\n'
    ).policy
    section = policy.section(layer)
    assert section.default == ret
    assert section.rules[0].action == ret


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("{ index = 0, op = 'eq', value = -1 }", ArgCheck(0, Op.EQ, U64)),
        ("{ index = 1, op = 'eq', value = -100 }", ArgCheck(1, Op.EQ, 2**64 - 100)),
        (
            "{ index = 1, op = 'eq', value = -100, width = 32 }",
            ArgCheck(1, Op.EQ, 0xFFFFFF9C, None, 32),
        ),
        ("{ index = 2, op = 'lt', value = 0xffffffffffffffff }", ArgCheck(2, Op.LT, U64)),
        ("{ index = 2, op = 'lt', value = -9223372036854775808 }", ArgCheck(2, Op.LT, 2**63)),
        ("{ index = 3, op = 'ge', value = '0x10' }", ArgCheck(3, Op.GE, 16)),
        (
            "{ index = 4, op = 'ne', value = 4294967295, width = 32 }",
            ArgCheck(4, Op.NE, 2**32 - 1, None, 32),
        ),
        (
            "{ index = 5, op = 'masked_eq', value = 0xf0, value2 = 0x10 }",
            ArgCheck(5, Op.MASKED_EQ, 0xF0, 0x10),
        ),
        ("{ index = 0, op = 'gt', value = 7, width = 64 }", ArgCheck(0, Op.GT, 7)),
    ],
)
def test_arg_values(arg, expected):
    policy = load_policy_text(
        f'[kernel]\ndefault = "allow"\n[[kernel.rules]]\nnames = ["ioctl"]\naction = "trap"\n'
        f"args = [{arg}]\n"
    ).policy
    assert policy.kernel.rules[0].args == (expected,)


def test_args_and_within_rule_kept_in_order():
    policy = load_policy_text(
        '[kernel]\ndefault = "allow"\n[[kernel.rules]]\nnames = ["mmap"]\naction = "kill_thread"\n'
        'args = [{ index = 2, op = "masked_eq", value = 4, value2 = 4 },'
        ' { index = 3, op = "ne", value = 0 }]\ncomment = "no PROT_EXEC"\n'
    ).policy
    assert policy.kernel.rules == (
        Rule(
            ("mmap",),
            KILL_THREAD,
            (ArgCheck(2, Op.MASKED_EQ, 4, 4), ArgCheck(3, Op.NE, 0)),
            "no PROT_EXEC",
        ),
    )


def test_arch_mismatch_flags_and_only_one_section():
    policy = load_policy_text(
        '[kernel]\ndefault = "errno(EPERM)"\narch_mismatch = "kill_thread"\n'
        'flags = ["log", "SECCOMP_FILTER_FLAG_TSYNC"]\n'
    ).policy
    assert policy.gates is None
    assert policy.kernel == Section(default=0x00050001, mismatch_action=KILL_THREAD)
    assert policy.flags == ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC")


def test_syscall_known_on_another_arch_only_is_accepted():
    # arch_prctl is x86-only and riscv_flush_icache riscv-only: valid in a portable policy.
    policy = load_policy_text(
        '[kernel]\ndefault = "allow"\n[[kernel.rules]]\n'
        'names = ["arch_prctl", "riscv_flush_icache"]\naction = "trap"\n'
    ).policy
    assert policy.kernel.rules[0].names == ("arch_prctl", "riscv_flush_icache")


def test_app_gates_declared_in_the_policy_or_registered_by_the_app():
    text = (
        '[gates]\ndefault = "kill_process"\napp_gates = ["kv_get"]\n'
        '[[gates.rules]]\nnames = ["kv_get", "fd_write"]\naction = "allow"\n'
    )
    assert load_policy_text(text).policy.gates.rules[0].names == ("kv_get", "fd_write")
    undeclared = (
        '[gates]\ndefault = "kill_process"\n[[gates.rules]]\nnames = ["kv_put"]\naction = "allow"\n'
    )
    with pytest.raises(PolicyError, match=r"gates\.rules\[0\]\.names\[0\]: unknown gate 'kv_put'"):
        load_policy_text(undeclared)
    loaded = load_policy_text(undeclared, gate_names=["kv_put"]).policy
    assert loaded.gates.rules[0].names == ("kv_put",)


def test_format_is_chosen_by_extension_then_content(tmp_path):
    toml_text = '[kernel]\ndefault = "allow"\n'
    json_text = '{"defaultAction": "SCMP_ACT_ALLOW"}'
    assert load_policy_result(write(tmp_path, toml_text, "a.policy")).format == "toml"
    assert load_policy_result(write(tmp_path, json_text, "b.policy"), arch="x86_64").format == "oci"
    assert load_policy_result(write(tmp_path, json_text, "c.json"), arch="x86_64").format == "oci"
    assert load_policy_result(json_text, arch="x86_64").format == "oci"
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(write(tmp_path, json_text, "d.toml"))


# (policy text, key path the error must name, a fragment saying what is allowed)
BAD = [
    ("", "", "needs a [gates] section"),
    ("[kernal]\ndefault='allow'\n", "kernal", "did you mean 'kernel'"),
    ("kernel = 3\n", "kernel", "must be a table"),
    ("[kernel]\n", "kernel.default", "is required"),
    ("[kernel]\ndefault = 'allw'\n", "kernel.default", "unknown action 'allw'"),
    ("[kernel]\ndefault = 1\n", "kernel.default", "must be an action string"),
    ("[kernel]\ndefault = 'errno(EFOO)'\n", "kernel.default", "not a Linux errno name"),
    ("[kernel]\ndefault = 'errno(4096)'\n", "kernel.default", "allowed 0..4095"),
    ("[kernel]\ndefault = 'errno(-1)'\n", "kernel.default", "does not fit"),
    ("[kernel]\ndefault = 'allow(3)'\n", "kernel.default", "takes no data"),
    ("[kernel]\ndefault = 'trace(70000)'\n", "kernel.default", "16 bits"),
    ("[gates]\ndefault = 'errno(ELOOPY)'\n", "gates.default", "not a WASI errno name"),
    (
        "[kernel]\ndefault = 'allow'\narch_mismatch = 'nope'\n",
        "kernel.arch_mismatch",
        "unknown action",
    ),
    ("[kernel]\ndefault = 'allow'\nflags = ['fast']\n", "kernel.flags[0]", "tsync, log"),
    ("[kernel]\ndefault = 'allow'\napp_gates = ['x']\n", "kernel.app_gates", "allowed keys"),
    (
        "[gates]\ndefault = 'allow'\napp_gates = ['fd_read']\n",
        "gates.app_gates[0]",
        "is a WASI gate",
    ),
    ("[gates]\ndefault = 'allow'\napp_gates = 'kv'\n", "gates.app_gates", "array of strings"),
    ("[kernel]\ndefault = 'allow'\nrules = 5\n", "kernel.rules", "array of tables"),
    ("[kernel]\ndefault = 'allow'\nrules = [5]\n", "kernel.rules[0]", "must be a table"),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\naction = 'trap'\n",
        "kernel.rules[0].names",
        "is required",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['read']\n",
        "kernel.rules[0].action",
        "is required",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = []\naction = 'trap'\n",
        "kernel.rules[0].names",
        "at least one name",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = 'read'\naction = 'trap'\n",
        "kernel.rules[0].names",
        "array of strings",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['read', 3]\naction = 'trap'\n",
        "kernel.rules[0].names[1]",
        "non-empty string",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['reed']\naction = 'trap'\n",
        "kernel.rules[0].names[0]",
        "did you mean 'read'",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['fd_write']\naction = 'trap'\n",
        "kernel.rules[0].names[0]",
        "unknown syscall 'fd_write'",
    ),
    (
        "[gates]\ndefault = 'allow'\n[[gates.rules]]\nnames = ['read']\naction = 'trap'\n",
        "gates.rules[0].names[0]",
        "unknown gate 'read'",
    ),
    (
        "[gates]\ndefault = 'allow'\n[[gates.rules]]\nnames = ['fd_wirte']\naction = 'trap'\n",
        "gates.rules[0].names[0]",
        "did you mean 'fd_write'",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['read']\naction = 'trap'\n"
        "acton = 'x'\n",
        "kernel.rules[0].acton",
        "did you mean 'action'",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['read']\naction = 'trap'\n"
        "comment = 3\n",
        "kernel.rules[0].comment",
        "must be a string",
    ),
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['read']\naction = 'trap'\n"
        "args = {index = 0}\n",
        "kernel.rules[0].args",
        "must be an array",
    ),
]
ARG_BAD = [
    ("{ index = 6, op = 'eq', value = 1 }", "args[0].index", "0..5"),
    ("{ index = -1, op = 'eq', value = 1 }", "args[0].index", "0..5"),
    ("{ index = true, op = 'eq', value = 1 }", "args[0].index", "0..5"),
    ("{ index = '0', op = 'eq', value = 1 }", "args[0].index", "0..5"),
    ("{ op = 'eq', value = 1 }", "args[0].index", "is required"),
    ("{ index = 0, value = 1 }", "args[0].op", "is required"),
    ("{ index = 0, op = 'eq' }", "args[0].value", "is required"),
    ("{ index = 0, op = '==', value = 1 }", "args[0].op", "eq, ne, lt, le, gt, ge, masked_eq"),
    ("{ index = 0, op = 'EQ', value = 1 }", "args[0].op", "unknown op 'EQ'"),
    ("{ index = 0, op = 'eq', value = 18446744073709551616 }", "args[0].value", "64 bits"),
    ("{ index = 0, op = 'eq', value = -9223372036854775809 }", "args[0].value", "64 bits"),
    ("{ index = 0, op = 'eq', value = 4294967296, width = 32 }", "args[0].value", "32 bits"),
    ("{ index = 0, op = 'eq', value = -2147483649, width = 32 }", "args[0].value", "32 bits"),
    ("{ index = 0, op = 'eq', value = 1.5 }", "args[0].value", "must be an integer"),
    ("{ index = 0, op = 'eq', value = true }", "args[0].value", "must be an integer"),
    ("{ index = 0, op = 'eq', value = 'ten' }", "args[0].value", "not an integer"),
    ("{ index = 0, op = 'eq', value = 1, width = 16 }", "args[0].width", "32 or 64"),
    ("{ index = 0, op = 'eq', value = 1, width = '32' }", "args[0].width", "32 or 64"),
    ("{ index = 0, op = 'masked_eq', value = 1 }", "args[0].value2", "required for op masked_eq"),
    ("{ index = 0, op = 'eq', value = 1, value2 = 1 }", "args[0].value2", "only used by op"),
    (
        "{ index = 0, op = 'masked_eq', value = 1, value2 = 4294967296, width = 32 }",
        "args[0].value2",
        "32 bits",
    ),
    ("{ index = 0, op = 'eq', value = 1, mask = 1 }", "args[0].mask", "allowed keys"),
    ("5", "args[0]", "must be a table"),
]
BAD += [
    (
        "[kernel]\ndefault = 'allow'\n[[kernel.rules]]\nnames = ['read']\naction = 'trap'\n"
        f"args = [{arg}]\n",
        f"kernel.rules[0].{path}",
        fragment,
    )
    for arg, path, fragment in ARG_BAD
]


@pytest.mark.parametrize(("text", "key_path", "fragment"), BAD)
def test_bad_policies_name_file_key_path_and_what_is_allowed(tmp_path, text, key_path, fragment):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    err = info.value
    assert any(p.key_path == key_path and fragment in p.message for p in err.problems), str(err)
    assert all(p.source == str(path) for p in err.problems)
    for line in str(err).splitlines()[1 if len(err.problems) > 1 else 0 :]:
        assert str(path) in line


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        "[kernel]\ndefault = 'nope'\n[[kernel.rules]]\nnames = ['reed']\n"
        "action = 'allow'\nargs = [{ index = 9, op = 'eq', value = 1 }]\n",
    )
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    paths = [p.key_path for p in info.value.problems]
    assert paths == ["kernel.default", "kernel.rules[0].names[0]", "kernel.rules[0].args[0].index"]
    assert str(info.value).startswith(f"3 problems in {path}:")


def test_unreadable_inputs_are_policy_errors(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "missing.toml")
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[kernel]")
    with pytest.raises(PolicyError, match="not UTF-8") as info:
        load_policy(binary)
    assert info.value.source == str(binary)
    with pytest.raises(PolicyError, match="unknown policy format 'yaml'"):
        load_policy_text("x", format="yaml")


def test_hostile_nesting_is_an_error_not_a_crash(tmp_path):
    path = write(tmp_path, "a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.source == str(path)


def test_load_policy_issues_no_warnings_for_a_clean_policy():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_policy_text(DESIGN_EXAMPLE)


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "policies" / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_example_policies_load_and_lint_clean(path, arch):
    result = load_policy_result(path)
    findings = lint(result, get_arch(arch))
    assert [f for f in findings if f.level != "info"] == []


def test_example_policies_mean_what_their_comments_say():
    examples = {p.name: load_policy(p) for p in EXAMPLES}
    gates = examples["stdout-only-plugin.toml"].gates
    assert gates.default == 0x00050000 | 52
    assert Rule(("fd_write",), ALLOW, (ArgCheck(0, Op.GE, 1, None, 32),
                                       ArgCheck(0, Op.LE, 2, None, 32))) in gates.rules
    kernel = examples["kernel-worker.toml"].kernel
    openat = [r for r in kernel.rules if r.names == ("openat",) and r.action == ALLOW]
    assert openat[0].args == (ArgCheck(0, Op.EQ, 0xFFFFFF9C, None, 32),
                              ArgCheck(2, Op.MASKED_EQ, 3, 0))
    assert examples["kernel-worker.toml"].flags == ("SECCOMP_FILTER_FLAG_TSYNC",)
    assert examples["app-gates.toml"].gates.rules[2].action == 0x00050000 | 28


def test_a_byte_order_mark_is_not_content(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + DESIGN_EXAMPLE.encode())
    assert load_policy(path).kernel.rules == (Rule(("read", "write"), ALLOW),)
    json_path = tmp_path / "bom.json"
    json_path.write_bytes(b"\xef\xbb\xbf" + b'{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert load_policy(json_path, arch="x86_64").kernel.default == ALLOW
