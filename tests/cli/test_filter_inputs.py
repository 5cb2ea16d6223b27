"""A policy or a program: one rule (callgate.cli.inputs), the same answer from every verb.

Every verb that takes a filter - ``run --policy``, ``call --policy``, ``emu``, ``explain``,
``graph`` - reads a file the same way; ``check``, ``compile`` and ``kernel policy`` refuse a
program, ``asm`` and ``disasm`` a policy, each in one line. Unknown names get a "did you
mean" in every verb. ``call`` and ``run`` share one least-privilege default, and
allow-all is only ever asked for by name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from callgate.cli import main
from callgate.cli.inputs import SHIPPED, filter_kind, read_filter_input, shipped_policy

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "guests" / "wasm"

KILL_WRITE_POLICY = """\
# kills the plugin on its first write
[gates]
default = "allow"
[[gates.rules]]
names = ["fd_write"]
action = "kill_process"
"""
# The same decision as a gate program, in assembly.
KILL_WRITE_PROGRAM = """\
# kills the plugin on its first write
A = arch
A == ARCH_CALLGATE ? next : kill
A = sys_number
A == fd_write ? kill : next
return ALLOW
kill:
return KILL_PROCESS
"""


@pytest.mark.parametrize(("name", "data", "kind"), [
    ("p.toml", b"", "policy"),
    ("p.json", b"A = sys_number", "policy"),  # the suffix decides
    ("f.bpf", b"[gates]", "program"),
    ("f.asm", b"", "program"),
    ("f.hex", b"{", "program"),
    ("policy", b"# comment\n\n[gates]\ndefault = 'allow'\n", "policy"),
    ("profile.txt", b'\xef\xbb\xbf{"defaultAction": "SCMP_ACT_ALLOW"}', "policy"),
    ("prog.txt", b"# comment\nA = sys_number\nreturn ALLOW\n", "program"),
    ("prog", b"200000000000000006000000ff7f0000", "program"),  # hex text
    ("raw", bytes(8), "program"),  # raw BPF holds NUL bytes
    ("empty", b"", "program"),
    ("-", b"[kernel]\n", "policy"),
])
def test_the_rule(name: str, data: bytes, kind: str) -> None:
    assert filter_kind(name, data) == kind


def test_shipped_names_unless_a_file_has_that_name(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in SHIPPED:
        given = read_filter_input(name)
        assert (given.kind, given.shipped) == ("policy", name)
    (tmp_path / "allow-all").write_text(KILL_WRITE_PROGRAM)
    given = read_filter_input("allow-all")
    assert (given.kind, given.shipped) == ("program", None)


def test_shipped_policies() -> None:
    allow_all = shipped_policy("allow-all")
    assert allow_all.gates is not None and allow_all.gates.rules == ()
    assert allow_all.gates.default == 0x7FFF0000  # SECCOMP_RET_ALLOW
    default, with_fs = shipped_policy("default"), shipped_policy("default+fs")
    assert default.gates is not None and with_fs.gates is not None
    assert with_fs.gates.default == default.gates.default
    assert with_fs.gates.rules[:len(default.gates.rules)] == default.gates.rules
    assert len(with_fs.gates.rules) > len(default.gates.rules)


def test_a_missing_file_suggests_a_shipped_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emu", "allow_all", "fd_write"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean 'allow-all'?)" in err


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """The same filter as a suffix-less policy, a .txt program and a raw program."""
    policy = tmp_path / "kill-write"
    policy.write_text(KILL_WRITE_POLICY)
    program = tmp_path / "kill-write.txt"
    program.write_text(KILL_WRITE_PROGRAM)
    raw = tmp_path / "kill-write-raw"
    assert main(["asm", str(program), "-o", str(raw)]) == 0
    return {"policy": policy, "program": program, "raw": raw}


@pytest.mark.parametrize("which", ["policy", "program", "raw"])
def test_every_verb_reads_a_filter_the_same_way(which: str, inputs: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = str(inputs[which])
    kind = "policy" if which == "policy" else "program"
    assert main(["emu", "-q", path, "fd_write", "1"]) == 0
    assert capsys.readouterr().out.startswith("return KILL_PROCESS at line")
    assert main(["explain", path, "fd_write", "1"]) == 0
    out = capsys.readouterr().out
    assert ("no rules to explain" in out) is (kind == "program")
    assert "KILL_PROCESS" in out.splitlines()[-1]
    assert main(["graph", path]) == 0
    title = "[gates] for callgate" if kind == "policy" else "(callgate names)"
    assert title in capsys.readouterr().out
    # run --policy and call --policy: the plugin is killed at its first write
    done = callgate("run", str(WASM / "lines.wasm"), "--policy", path, "--", "1")
    assert done.returncode == 159 and "fd_write" in done.stderr, done.stderr


def test_policy_only_verbs_refuse_a_program(inputs: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["check", str(inputs["program"])], ["compile", str(inputs["raw"])],
                 ["kernel", "policy", str(inputs["program"])]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a BPF program, not a policy" in err


def test_program_verbs_refuse_a_policy(inputs: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for verb in ("asm", "disasm"):
        assert main([verb, str(inputs["policy"])]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a policy, not a BPF program" in err
        assert "--format asm" in err


def test_policy_options_are_refused_for_a_program(inputs: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emu", str(inputs["program"]), "fd_write", "--layer", "gates"]) == 2
    assert "--layer only apply to a policy" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["emu", "policies/default.toml", "write", "1"],
    ["emu", "examples/filter.asm", "wirte"],
    ["explain", "policies/default.toml", "fd_wirte", "1"],
    ["explain", "examples/filter.asm", "wirte"],
    ["emu", "examples/filter.asm", "write", "--arch", "x86-64"],
    ["compile", "policies/examples/docker-like.json", "--arch", "aarch46"],
    ["kernel", "policy", "default", "--arch", "amd46"],
])
def test_names_get_did_you_mean_everywhere(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean '" in err, err


def test_a_typo_in_a_gate_program_gets_did_you_mean(tmp_path: Path) -> None:
    program = tmp_path / "typo.asm"
    program.write_text(KILL_WRITE_PROGRAM.replace("fd_write", "fd_wirte"))
    done = callgate("run", str(WASM / "lines.wasm"), "--policy", str(program), "--", "1")
    assert done.returncode == 2
    assert "unknown name 'fd_wirte' (did you mean 'fd_write'" in done.stderr


# -- one least-privilege default ------------------------------------------------------------

# path_open(fd 3, ...): EBADF (8) when the gate runs (there is no fd 3), ENOSYS (52) when the
# policy denies it as the default policy does.
PROBE = """
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "probe") (result i32)
    (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0)
                (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 16))))
"""


def callgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callgate", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, check=False)


def test_call_and_run_share_the_least_privilege_default(tmp_path: Path) -> None:
    probe = tmp_path / "probe.wat"
    probe.write_text(PROBE)
    done = callgate("call", str(probe), "probe")
    assert (done.returncode, done.stdout) == (0, "52\n"), done.stderr  # ENOSYS: denied
    done = callgate("call", str(probe), "probe", "--policy", "default")
    assert (done.returncode, done.stdout) == (0, "52\n"), done.stderr
    done = callgate("call", str(probe), "probe", "--policy", "allow-all")
    assert (done.returncode, done.stdout) == (0, "8\n"), done.stderr  # EBADF: it ran
