"""``callgate explain`` on the command line: content checked against what each test knows.

Expected rules, values and verdicts are written into the tests from the policies
they use; the executed path is compared with what ``callgate emu`` prints for the
program ``callgate compile`` writes (two other verbs, run separately).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.asm.assembler import assemble
from callgate.cli import main

ROOT = Path(__file__).parents[2]
DEFAULT = ROOT / "policies" / "default.toml"
DOCKER = ROOT / "policies" / "examples" / "docker-like.json"

POLICY = """
[kernel]
default = "errno(EPERM)"

[[kernel.rules]]
names = ["read", "write"]
action = "allow"

[[kernel.rules]]
names = ["write"]
action = "kill_process"
args = [{ index = 0, op = "eq", value = 99 }]

[[kernel.rules]]
names = ["write"]
action = "errno(EACCES)"
args = [{ index = 1, op = "gt", value = 0x100000000 },
        { index = 2, op = "le", value = 7, width = 32 }]

[gates]
default = "errno(38)"
app_gates = ["app_log"]

[[gates.rules]]
names = ["fd_write", "app_log"]
action = "allow"
"""


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def explain(capsys, *argv):
    code = main(["explain", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_rule_that_matches_and_why(policy, capsys):
    code, out, _ = explain(capsys, policy, "--arch", "x86_64", "write", 99)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Call: write = syscall 1 (0x1) on x86_64"
    assert "  args: 0x63 0x0 0x0 0x0 0x0 0x0" in lines
    assert "  rule 1 (kernel.rules[0]) write -> ALLOW: matches" in lines
    assert "  rule 2 (kernel.rules[1]) write -> KILL_PROCESS: matches (decides)" in lines
    assert "  rule 3 (kernel.rules[2]) write -> ERRNO(13): does not match" in lines
    assert any(line.split() == ["args[0]", "==", "0x63", "0x63", "==", "0x63", "true"]
               for line in lines)
    reason = " ".join(out.split("  => ")[1].split("\n\n")[0].split())
    assert reason.startswith("rules 1 (ALLOW), 2 (KILL_PROCESS) match; the most restrictive")
    assert reason.endswith(": KILL_PROCESS")
    assert lines[-1].startswith("Verdict: KILL_PROCESS (the policy and the compiled program agree")


def test_each_comparison_shows_its_values(policy, capsys):
    # args[1] = 2**32 + 1 > 2**32 holds; args[2]'s low word 8 <= 7 does not.
    code, out, _ = explain(capsys, policy, "-a", "x86_64", "write", 1, 0x100000001,
                           0x500000008)
    assert code == 0
    words = [line.split() for line in out.splitlines()]
    assert ["args[1]", ">", "0x100000000", "0x100000001", ">", "0x100000000", "true"] in words
    assert ["args[2]", "<=", "0x7", "(low", "32", "bits)", "0x8", "<=", "0x7", "false"] in words
    assert "(64-bit: high words 0x1 vs 0x1, then low words 0x1 vs 0x0)" in out
    assert "(high word 0x5 ignored: only the low word is compared)" in out
    assert "rule 3 (kernel.rules[2]) write -> ERRNO(13): does not match" in out
    assert out.splitlines()[-1].startswith("Verdict: ALLOW")


def test_default_when_no_rule_matches(policy, capsys):
    code, out, _ = explain(capsys, policy, "-a", "x86_64", "getpid")
    assert code == 0
    assert "=> no rule names getpid: the section default ERRNO(1)" in out
    assert out.splitlines()[-1].startswith("Verdict: ERRNO(1)")


def test_path_is_what_emu_prints_for_the_compiled_program(policy, tmp_path, capsys):
    bpf = tmp_path / "kernel.bpf"
    assert main(["compile", str(policy), "-a", "x86_64", "-o", str(bpf)]) == 0
    assert main(["emu", str(bpf), "write", "99", "-a", "x86_64"]) == 0
    emu = capsys.readouterr().out.splitlines()
    code, out, _ = explain(capsys, policy, "-a", "x86_64", "write", 99)
    assert code == 0
    lines = out.splitlines()
    start = lines.index(" line  CODE  JT   JF      K")
    end = lines.index("", start)
    path = [line.split("  # ")[0].rstrip() for line in lines[start:end]]
    assert path == emu[: len(path)]
    assert emu[len(path):] == ["", "return KILL_PROCESS at line " + path[-1][1:5]]


def test_json_is_plain_data(policy, capsys):
    code, out, _ = explain(capsys, policy, "-a", "x86_64", "--json", "write", 5, 0, 3)
    assert code == 0
    doc = json.loads(out)
    assert doc["policy"] == str(policy) and doc["layer"] == "kernel"
    assert doc["nr"] == 1 and doc["args"] == [5, 0, 3, 0, 0, 0]
    assert doc["stage"] == "rules" and doc["winners"] == [1]
    assert doc["bpf_text"] == doc["reference_text"] == "ALLOW" and doc["agree"] is True
    rule2 = next(r for r in doc["rules"] if r["number"] == 2)
    assert rule2["checks"] == [{"index": 0, "op": "eq", "width": 64, "value": 99,
                                "value2": None, "arg": 5, "compared": 5, "holds": False}]
    assert doc["path"][0]["listing"].endswith("A = arch")


def test_negative_args_are_twos_complement(policy, capsys):
    code, out, _ = explain(capsys, policy, "-a", "x86_64", "--json", "write", -1)
    assert code == 0
    assert json.loads(out)["args"][0] == 2**64 - 1


def test_gates_layer_and_app_gates(policy, capsys):
    code, out, _ = explain(capsys, policy, "--layer", "gates", "--gate-names", "app_log",
                           "app_log")
    assert code == 0
    assert out.splitlines()[0] == "Call: app_log = gate 4096 (0x1000) on callgate"
    assert out.splitlines()[-1].startswith("Verdict: ALLOW")
    code, _, err = explain(capsys, policy, "--layer", "gates", "app_log")
    assert code == 2
    assert "unknown gate 'app_log'" in err and "--gate-names" in err


def test_shipped_default_policy_gates_layer(capsys):
    # default.toml: fd_write is allowed on fds 1 and 2 (low word), ENOSYS otherwise;
    # ENOSYS is 52 in WASI's numbering.
    code, out, _ = explain(capsys, DEFAULT, "--layer", "gates", "fd_write", 2)
    assert code == 0
    assert "fd_write -> ALLOW: matches (decides)" in out
    assert out.splitlines()[-1].startswith("Verdict: ALLOW")
    code, out, _ = explain(capsys, DEFAULT, "--layer", "gates", "fd_write", 3)
    assert "=> no rule naming fd_write matches: the section default ERRNO(52)" in out
    assert out.splitlines()[-1].startswith("Verdict: ERRNO(52)")
    code, out, _ = explain(capsys, DEFAULT, "--layer", "gates", "fd_write", 0x100000001)
    assert "(high word 0x1 ignored: only the low word is compared)" in out
    assert out.splitlines()[-1].startswith("Verdict: ALLOW")


def test_shipped_docker_profile_kernel_layer(capsys):
    profile = json.loads(DOCKER.read_text())
    personas = [
        rule["args"][0]["value"]
        for rule in profile["syscalls"]
        if rule["names"] == ["personality"]
    ]
    assert 0xFFFFFFFF in personas
    for value in personas:
        code, out, _ = explain(capsys, DOCKER, "--layer", "kernel", "-a", "x86_64",
                               "personality", value)
        assert code == 0
        assert out.splitlines()[-1].startswith("Verdict: ALLOW"), value
    unlisted = max(personas) - 1
    code, out, _ = explain(capsys, DOCKER, "-a", "x86_64", "personality", unlisted)
    assert code == 0
    assert "no rule naming personality matches" in out
    assert out.splitlines()[-1].startswith(f"Verdict: ERRNO({profile['defaultErrnoRet']})")


def test_mismatched_arch_and_x32(policy, capsys):
    code, out, _ = explain(capsys, policy, "-a", "x86_64", "--arch-value", "aarch64", "read")
    assert code == 0
    assert "seccomp_data.arch 0xc00000b7 is not 0xc000003e" in out
    assert out.splitlines()[-1].startswith("Verdict: KILL_PROCESS")
    code, out, _ = explain(capsys, policy, "-a", "x86_64", hex(0x40000000 | 1))
    assert "has the x32 bit" in out
    assert out.splitlines()[-1].startswith("Verdict: KILL_PROCESS")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["reed"], "unknown syscall 'reed' on arch x86_64 (did you mean 'read'"),
        (["read", str(2**64)], "argument 0 '18446744073709551616' does not fit in 64 bits"),
        (["read", "0", "twelve"], "argument 1 'twelve' is not a number"),
        (["read", *"1234567"], "a syscall has at most 6 arguments, got 7"),
        (["read", "--ip", "0x1ffffffffffffffff"], "instruction pointer"),
        (["read", "--arch-value", "vax"], "unknown arch 'vax'"),
    ],
)
def test_bad_input_is_a_clear_error(policy, capsys, argv, message):
    code, out, err = explain(capsys, policy, "-a", "x86_64", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("callgate explain: ") and message in err
    assert len(err.splitlines()) == 1


def test_disagreement_fails_loudly(policy, capsys, monkeypatch):
    import callgate.cli.teach_verbs as teach_verbs

    monkeypatch.setattr(teach_verbs, "compile_plan", lambda plan: assemble("return ALLOW\n"))
    code, out, err = explain(capsys, policy, "-a", "x86_64", "getpid")
    assert code == 1
    assert "DISAGREEMENT: the policy says ERRNO(1)" in out
    assert "the compiled program returns ALLOW" in out
    assert "disagree" in err


def test_real_script(policy):
    done = subprocess.run(
        [sys.executable, "-m", "callgate", "explain", str(policy), "-a", "x86_64", "read"],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("Verdict: ALLOW")
