"""``callgate compile``: every format, both layers, and clear errors for options that clash."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.arch import AUDIT_ARCH_CALLGATE, get_arch, native_arch
from callgate.arch.gate_numbers import APP_GATE_FIRST
from callgate.asm.assembler import assemble
from callgate.bpf import interpret
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS
from callgate.bpf.insn import unpack
from callgate.bpf.seccomp_data import SeccompData
from callgate.cli import main

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

[gates]
default = "errno(38)"
app_gates = ["app_log"]

[[gates.rules]]
names = ["fd_write", "app_log"]
action = "allow"
"""
DOCKER = Path(__file__).parents[2] / "policies" / "examples" / "docker-like.json"


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def compile_to(tmp_path, *argv) -> bytes:
    out = tmp_path / "out"
    assert main(["compile", *argv, "-o", str(out)]) == 0
    return out.read_bytes()


def run(program, arch, name, *args):
    return interpret(program, SeccompData.make(arch.number(name), arch.audit_arch, list(args))).ret


def test_raw_kernel_program_decides_as_the_policy_says(tmp_path, policy):
    arch = native_arch()
    program = unpack(compile_to(tmp_path, str(policy)))
    assert run(program, arch, "write", 1) == SECCOMP_RET_ALLOW
    assert run(program, arch, "write", 99) == SECCOMP_RET_KILL_PROCESS
    assert run(program, arch, "read", 99) == SECCOMP_RET_ALLOW
    assert run(program, arch, "close", 1) == SECCOMP_RET_ERRNO | 1


def test_asm_reassembles_to_the_raw_bytes(tmp_path, policy):
    raw = compile_to(tmp_path, str(policy), "--format", "raw")
    text = compile_to(tmp_path, str(policy), "--format", "asm").decode()
    assert assemble(text) == unpack(raw)


def test_c_and_pfc_formats(tmp_path, policy):
    raw = unpack(compile_to(tmp_path, str(policy)))
    c_text = compile_to(tmp_path, str(policy), "-f", "c").decode()
    assert "struct sock_filter filter[] = {" in c_text
    assert len(re.findall(r"^\t\{ 0x", c_text, re.M)) == len(raw)
    pfc = compile_to(tmp_path, str(policy), "-f", "pfc").decode()
    assert "if ($a0 == 99)\n      action KILL_PROCESS;" in pfc
    assert pfc.rstrip().endswith("# pseudo filter code end\n#")


def test_gates_layer_with_app_gates(tmp_path, policy):
    raw = compile_to(tmp_path, str(policy), "--layer", "gates", "--gate-names", "app_log")
    program = unpack(raw)
    assert program[1].k == AUDIT_ARCH_CALLGATE
    call = SeccompData.make(APP_GATE_FIRST, AUDIT_ARCH_CALLGATE)
    assert interpret(program, call).ret == SECCOMP_RET_ALLOW
    call = SeccompData.make(APP_GATE_FIRST + 1, AUDIT_ARCH_CALLGATE)
    assert interpret(program, call).ret == SECCOMP_RET_ERRNO | 38


def test_unnumbered_app_gates_are_reported(tmp_path, policy, capsys):
    program = unpack(compile_to(tmp_path, str(policy), "--layer", "gates"))
    assert "app_log" in capsys.readouterr().err
    assert (
        interpret(program, SeccompData.make(0, AUDIT_ARCH_CALLGATE)).ret == SECCOMP_RET_ERRNO | 38
    )


def test_oci_profile_for_another_arch(tmp_path):
    arch = get_arch("aarch64")
    program = unpack(compile_to(tmp_path, str(DOCKER), "--arch", "aarch64"))
    assert program[1].k == arch.audit_arch
    assert run(program, arch, "getppid") == SECCOMP_RET_ALLOW
    assert run(program, arch, "mount") == SECCOMP_RET_ERRNO | 1
    with_admin = unpack(
        compile_to(tmp_path, str(DOCKER), "-a", "aarch64", "--caps", "CAP_SYS_ADMIN")
    )
    assert run(with_admin, arch, "mount") == SECCOMP_RET_ALLOW


def test_stdout_defaults_to_asm(policy):
    done = subprocess.run(
        [sys.executable, "-m", "callgate", "compile", str(policy)],
        capture_output=True,
        check=True,
    )
    assert done.stdout.startswith(b" line  CODE")
    assert assemble(done.stdout.decode())


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--layer", "gates", "--arch", "x86_64"], "gates layer always compiles"),
        (["--layer", "kernel", "--arch", "callgate"], "kernel arch"),
    ],
)
def test_clashing_options_are_explained(policy, capsys, argv, message):
    assert main(["compile", str(policy), *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_section_and_missing_file(tmp_path, capsys):
    only_kernel = tmp_path / "k.toml"
    only_kernel.write_text('[kernel]\ndefault = "allow"\n')
    assert main(["compile", str(only_kernel), "--layer", "gates"]) == 2
    assert "no [gates] section" in capsys.readouterr().err
    assert main(["compile", str(tmp_path / "absent.toml")]) == 2
    assert "absent.toml" in capsys.readouterr().err
