"""``callgate check`` and the exact argument reasoning under it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from callgate.arch import get_arch
from callgate.cli import main
from callgate.policy import ArgCheck, Op, load_policy_result
from callgate.policy.argspace import atoms_of, checks_satisfiable, implies, witness
from callgate.policy.lint import lint
from callgate.policy.reference import holds

U32 = 2**32 - 1
U64 = 2**64 - 1
DOCKER_LIKE = Path(__file__).resolve().parents[2] / "policies" / "examples" / "docker-like.json"


def eq(i, v, w=64):
    return ArgCheck(i, Op.EQ, v, None, w)


@pytest.mark.parametrize(
    ("checks", "possible"),
    [
        ([ArgCheck(0, Op.LT, 0)], False),
        ([ArgCheck(0, Op.GT, U64)], False),
        ([ArgCheck(0, Op.GT, U32, None, 32)], False),
        ([ArgCheck(0, Op.GT, U32)], True),
        ([ArgCheck(0, Op.GE, 0), ArgCheck(0, Op.LE, U64)], True),
        ([ArgCheck(0, Op.GT, 5), ArgCheck(0, Op.LT, 3)], False),
        ([ArgCheck(0, Op.GT, 5), ArgCheck(0, Op.LT, 7)], True),
        ([ArgCheck(0, Op.GT, 5), ArgCheck(0, Op.LT, 6)], False),
        ([eq(0, 5, 32), eq(0, 5 + 2**32)], True),  # the low word is 5
        ([eq(0, 5, 32), eq(0, 6)], False),
        ([ArgCheck(0, Op.MASKED_EQ, 0xFF, 0x12), eq(0, 0x1234)], False),
        ([ArgCheck(0, Op.MASKED_EQ, 0xFF, 0x34), eq(0, 0x1234)], True),
        ([ArgCheck(0, Op.MASKED_EQ, 0x4, 0x5)], False),  # value2 outside the mask
        ([ArgCheck(0, Op.MASKED_EQ, 0x4, 0x4), ArgCheck(0, Op.MASKED_EQ, 0x6, 0x2)], False),
        ([ArgCheck(0, Op.MASKED_EQ, 0x4, 0x4), ArgCheck(0, Op.MASKED_EQ, 0x3, 0x2)], True),
        (
            [ArgCheck(0, Op.GE, 3), ArgCheck(0, Op.LE, 5)]
            + [ArgCheck(0, Op.NE, v) for v in (3, 4, 5)],
            False,
        ),
        ([ArgCheck(0, Op.LE, 0, None, 32), ArgCheck(0, Op.NE, 0, None, 32)], False),
        ([ArgCheck(0, Op.LE, 0, None, 32), ArgCheck(0, Op.NE, 0)], True),  # 2**32 has low word 0
        # the high word must be 0xffffffff and the low word 0..9, yet the value below 2**63
        (
            [
                ArgCheck(0, Op.MASKED_EQ, 0xFFFFFFFF << 32, 0xFFFFFFFF << 32),
                ArgCheck(0, Op.LT, 10, None, 32),
                ArgCheck(0, Op.LT, 2**63),
            ],
            False,
        ),
        ([eq(0, 1), eq(1, 2), ArgCheck(1, Op.NE, 2)], False),
    ],
)
def test_satisfiable_cases(checks, possible):
    assert checks_satisfiable(checks) is possible


@pytest.mark.parametrize(
    ("premise", "conclusion", "expected"),
    [
        ([eq(0, 1)], [ArgCheck(0, Op.LT, 5)], True),
        ([ArgCheck(0, Op.LT, 5)], [eq(0, 1)], False),
        ([ArgCheck(0, Op.MASKED_EQ, 0xF0, 0x10)], [ArgCheck(0, Op.GE, 0x10)], True),
        ([ArgCheck(0, Op.MASKED_EQ, 0xF0, 0x10)], [ArgCheck(0, Op.MASKED_EQ, 0x10, 0x10)], True),
        ([ArgCheck(0, Op.MASKED_EQ, 0x10, 0x10)], [ArgCheck(0, Op.MASKED_EQ, 0xF0, 0x10)], False),
        ([eq(0, 2**32 + 5)], [eq(0, 5, 32)], True),
        ([eq(0, 5, 32)], [eq(0, 5)], False),
        ([], [], True),
        ([eq(0, 1)], [], True),
        ([], [eq(0, 1)], False),
        ([ArgCheck(0, Op.LT, 0)], [eq(3, 9)], True),  # nothing matches the premise
        ([eq(0, 1), eq(1, 2)], [eq(1, 2)], True),
        ([eq(0, 1)], [eq(1, 2)], False),
    ],
)
def test_implies_cases(premise, conclusion, expected):
    assert implies(premise, conclusion) is expected


CONSTANTS = [0, 1, 2, 5, 0xFF, 0x100, U32 - 1, U32, 2**32, 2**32 + 5, 2**63, U64 - 1, U64]


@st.composite
def arg_checks(draw, index=0):
    width = draw(st.sampled_from([32, 64]))
    top = (1 << width) - 1
    op = draw(st.sampled_from(list(Op)))
    value = draw(st.sampled_from(CONSTANTS)) & top
    value2 = None
    if op is Op.MASKED_EQ:
        value2 = draw(st.sampled_from(CONSTANTS)) & top & (value if draw(st.booleans()) else top)
    return ArgCheck(index, op, value, value2, width)


def probes(checks):
    """Values around every constant, in both words, and with mask bits flipped."""
    out = {0, U64, U32, 2**32}
    for c in checks:
        for v in (c.value, c.value2 or 0):
            for hi in (0, 1, U32, v >> 32):
                for lo in (v - 1, v, v + 1):
                    out.add((hi << 32 | lo & U32) & U64)
                    out.add((v + lo - v) & U64)
    base = list(out)
    for c in checks:
        if c.op is Op.MASKED_EQ:
            out |= {p ^ (1 << b) for p in base for b in range(64) if c.value >> b & 1}
    return out


def all_hold(checks, value):
    return all(holds(c, (value, 0, 0, 0, 0, 0)) for c in checks)


@settings(max_examples=400, deadline=None)
@given(st.lists(arg_checks(), min_size=1, max_size=4))
def test_witness_is_the_smallest_value_meeting_every_check(checks):
    atoms = [a for c in checks for a in (atoms_of(c) or [])]
    found = None if any(atoms_of(c) is None for c in checks) else witness(atoms)
    if found is not None:
        assert all_hold(checks, found)
    solutions = [p for p in probes(checks) if all_hold(checks, p)]
    if solutions:
        assert found is not None and found <= min(solutions)
    assert checks_satisfiable(checks) is (found is not None)


@settings(max_examples=300, deadline=None)
@given(st.lists(arg_checks(), max_size=3), st.lists(arg_checks(), max_size=3))
def test_implication_is_never_claimed_wrongly(premise, conclusion):
    if implies(premise, conclusion):
        for p in probes([*premise, *conclusion]):
            if all_hold(premise, p):
                assert all_hold(conclusion, p), p


# --- lint findings -----------------------------------------------------------------

BAD_TOML = """
[kernel]
default = "errno(EPERM)"
[[kernel.rules]]          # 0
names = ["read", "write"]
action = "allow"
[[kernel.rules]]          # 1: read with fd 0 is already allowed by rule 0
names = ["read"]
action = "allow"
args = [{ index = 0, op = "eq", value = 0 }]
[[kernel.rules]]          # 2: lt 0 never holds
names = ["write"]
action = "kill_process"
args = [{ index = 0, op = "lt", value = 0 }]
[[kernel.rules]]          # 3: the default's action, and nothing to override
names = ["close"]
action = "errno(EPERM)"
[[kernel.rules]]          # 4: contradiction
names = ["openat"]
action = "allow"
args = [{ index = 2, op = "gt", value = 5 }, { index = 2, op = "lt", value = 3 }]
[[kernel.rules]]          # 5: value2 outside the mask
names = ["mmap"]
action = "trap"
args = [{ index = 2, op = "masked_eq", value = 4, value2 = 5 }]
[[kernel.rules]]          # 6: allows a subset of what rule 7 kills
names = ["ioctl"]
action = "allow"
args = [{ index = 1, op = "eq", value = 0x5401 }]
[[kernel.rules]]          # 7: not redundant, though it has the default's action
names = ["ioctl"]
action = "errno(EPERM)"
args = [{ index = 1, op = "masked_eq", value = 0xff00, value2 = 0x5400 }]
[[kernel.rules]]          # 8: x86-only
names = ["arch_prctl"]
action = "allow"
[[kernel.rules]]          # 9: wins over rule 1 for read, but does not cover rule 0
names = ["read"]
action = "kill_thread"
args = [{ index = 2, op = "gt", value = 4096 }]
"""


def findings_of(tmp_path, text, name="p.toml", **target):
    path = tmp_path / name
    path.write_text(text)
    result = load_policy_result(path, **target)
    return path, lint(result, get_arch(target.get("arch", "x86_64")))


def test_lint_findings_on_a_policy_with_every_mistake(tmp_path):
    path, findings = findings_of(tmp_path, BAD_TOML, arch="aarch64")
    got = {(f.level, f.key_path) for f in findings}
    assert got == {
        ("warning", "kernel.rules[1]"),
        ("error", "kernel.rules[2]"),
        ("warning", "kernel.rules[3]"),
        ("error", "kernel.rules[4]"),
        ("error", "kernel.rules[5]"),
        ("warning", "kernel.rules[6]"),
        ("warning", "kernel.rules[8]"),
    }
    text = {f.key_path: f.message for f in findings}
    assert "shadowed by kernel.rules[0] (ALLOW)" in text["kernel.rules[1]"]
    assert "lt 0x0 holds for no unsigned" in text["kernel.rules[2]"]
    assert "redundant" in text["kernel.rules[3]"]
    assert "contradict" in text["kernel.rules[4]"]
    assert "bits outside the mask" in text["kernel.rules[5]"]
    assert "shadowed by kernel.rules[7] (ERRNO(1))" in text["kernel.rules[6]"]
    assert "aarch64" in text["kernel.rules[8]"]
    assert all(f.source == str(path) for f in findings)
    # On x86_64 arch_prctl exists, so that warning goes away.
    _, on_x86 = findings_of(tmp_path, BAD_TOML, arch="x86_64")
    assert ("warning", "kernel.rules[8]") not in {(f.level, f.key_path) for f in on_x86}


def test_lint_reports_equal_rank_ties_as_info(tmp_path):
    text = (
        '[kernel]\ndefault = "allow"\n[[kernel.rules]]\nnames = ["getpid"]\n'
        'action = "errno(5)"\n[[kernel.rules]]\nnames = ["getpid"]\naction = "errno(3)"\n'
        'args = [{ index = 0, op = "ne", value = 1 }]\n'
    )
    _, findings = findings_of(tmp_path, text)
    levels = {(f.level, f.key_path) for f in findings}
    assert levels == {("info", "kernel.rules[1]")}
    assert "ERRNO(3) wins" in findings[0].message


def test_lint_docker_like_profile_is_clean_and_caps_create_overlaps(tmp_path):
    result = load_policy_result(DOCKER_LIKE, arch="x86_64", kernel_version="6.18")
    assert [f for f in lint(result, get_arch("x86_64")) if f.level != "info"] == []
    result = load_policy_result(
        DOCKER_LIKE, arch="x86_64", kernel_version="6.18", caps=["CAP_SYS_PTRACE"]
    )
    warnings = [f for f in lint(result, get_arch("x86_64")) if f.level == "warning"]
    assert len(warnings) == 1
    assert "process_vm_readv, process_vm_writev, ptrace" in warnings[0].message
    assert warnings[0].key_path.startswith("syscalls[")


def test_lint_oci_architectures_without_the_target(tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
    }
    _, findings = findings_of(tmp_path, json.dumps(profile), "p.json", arch="x86_64")
    assert [(f.level, f.key_path) for f in findings] == [("warning", "architectures")]
    assert "SCMP_ARCH_X86_64" in findings[0].message


# --- the command line ----------------------------------------------------------------


def test_cli_check_exit_status_and_output(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_TOML)
    assert main(["check", str(bad), "--arch", "x86_64"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}: kernel.rules[2]: error: can never match" in "\n".join(out)
    assert out[-1] == f"{bad}: 3 error(s), 3 warning(s)"
    good = tmp_path / "good.toml"
    good.write_text(
        '[kernel]\ndefault = "kill_process"\n[[kernel.rules]]\nnames = ["read"]\naction = "allow"\n'
    )
    assert main(["check", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: 0 error(s), 0 warning(s)"


def test_cli_check_reports_load_errors_with_key_paths(tmp_path, capsys):
    bad = tmp_path / "typo.toml"
    bad.write_text(
        '[kernel]\ndefault = "alow"\n[[kernel.rules]]\nnames = ["reed"]\naction = "allow"\n'
    )
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: kernel.default: error: unknown action 'alow'" in out
    assert f"{bad}: kernel.rules[0].names[0]: error: unknown syscall 'reed'" in out


def test_cli_check_oci_options_and_stdin(tmp_path, capsys, monkeypatch):
    assert (
        main(
            [
                "check",
                str(DOCKER_LIKE),
                "--arch",
                "x86_64",
                "--caps",
                "CAP_SYS_PTRACE",
                "--kernel-version",
                "6.1",
            ]
        )
        == 0
    )
    assert "1 warning(s)" in capsys.readouterr().out
    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO(
            '[gates]\ndefault = "allow"\n[[gates.rules]]\nnames = ["kv_get"]\naction = "trap"\n'
        ),
    )
    assert main(["check", "-", "--gate-names", "kv_get", "--layer", "gates"]) == 0
    assert capsys.readouterr().out.strip() == "<stdin>: 0 error(s), 0 warning(s)"
    assert main(["check", str(DOCKER_LIKE), "--arch", "vax"]) == 2


def test_lint_app_gates_shadow_like_wasi_gates(tmp_path):
    text = ('[gates]\ndefault = "errno(ENOSYS)"\napp_gates = ["kv_get"]\n'
            '[[gates.rules]]\nnames = ["kv_get", "fd_write"]\naction = "kill_process"\n'
            '[[gates.rules]]\nnames = ["kv_get"]\naction = "allow"\n'
            'args = [{ index = 1, op = "le", value = 64, width = 32 }]\n')
    _, findings = findings_of(tmp_path, text)
    assert [(f.level, f.key_path) for f in findings] == [("warning", "gates.rules[1]")]
    assert "shadowed by gates.rules[0] (KILL_PROCESS)" in findings[0].message


@pytest.mark.parametrize(("mismatch", "warned"), [
    ("allow", True), ("log", True), ("trace(1)", True), ("user_notif", False),
    ("errno(EPERM)", False), ("kill_thread", False)])
def test_lint_permissive_arch_mismatch(tmp_path, mismatch, warned):
    text = f'[kernel]\ndefault = "kill_process"\narch_mismatch = "{mismatch}"\n'
    _, findings = findings_of(tmp_path, text)
    assert [(f.level, f.key_path) for f in findings] == (
        [("warning", "kernel.arch_mismatch")] if warned else [])


def test_lint_oci_overlaps_with_different_actions_only_for_oci(tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["read"], "action": "SCMP_ACT_LOG",
         "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_GT"}]},
        {"names": ["write"], "action": "SCMP_ACT_TRAP",  # disjoint from nothing: overlaps
         "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_LT"}]}]}
    _, findings = findings_of(tmp_path, json.dumps(profile), "p.json")
    assert [(f.level, f.key_path) for f in findings] == [
        ("warning", "syscalls[1]"), ("warning", "syscalls[2]"), ("info", "syscalls[2]")]
    assert "LOG vs ALLOW" in findings[0].message
    assert "no SIGSYS handler" in findings[2].message
    # The same rules in TOML mean exactly what they say: no such warning.
    text = ('[kernel]\ndefault = "errno(EPERM)"\n[[kernel.rules]]\nnames = ["read"]\n'
            'action = "allow"\n[[kernel.rules]]\nnames = ["read"]\naction = "log"\n'
            'args = [{ index = 0, op = "gt", value = 3 }]\n')
    _, toml_findings = findings_of(tmp_path, text)
    assert toml_findings == []


def test_lint_says_what_a_kernel_trap_does_under_callgates_lockdown(tmp_path):
    text = ('[kernel]\ndefault = "trap"\n[[kernel.rules]]\nnames = ["read"]\n'
            'action = "allow"\n[[kernel.rules]]\nnames = ["write"]\naction = "trap(3)"\n'
            '[gates]\ndefault = "trap"\n')
    _, findings = findings_of(tmp_path, text)
    # The gate layer's trap goes to the broker: nothing to say there.
    assert [(f.level, f.key_path) for f in findings] == [
        ("info", "kernel.default"), ("info", "kernel.rules[1]")]
    assert all("ends the process as kill_process would" in f.message for f in findings)
