"""``callgate run``: the exit status is the guest's, stdio is the process's, --dir grants files.

Each test runs the real command in a subprocess, as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from wasi_helpers import REPO

from callgate.cli.run_verb import default_policy

WASM = REPO / "guests" / "wasm"


def run(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callgate", "run", *args], input=stdin,
                          capture_output=True, timeout=120, cwd=cwd)


def test_exit_status_args_env_and_stdout() -> None:
    done = run(str(WASM / "envargs.wasm"), "--env", "EXIT_CODE=7", "--env", "K=v w",
               "--", "one", "--not-an-option")
    assert done.returncode == 7, done.stderr
    assert done.stdout == (b"argc=3\nargv[0]=envargs.wasm\nargv[1]=one\n"
                           b"argv[2]=--not-an-option\nenv EXIT_CODE=7\nenv K=v w\n")


def test_stdin_is_inherited() -> None:
    done = run(str(WASM / "cat.wasm"), stdin=b"through the gates\n")
    assert (done.returncode, done.stdout) == (0, b"through the gates\n")


def test_dir_grants_a_directory_and_ro_refuses_writes(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"payload" * 1000)
    done = run(str(WASM / "copyfile.wasm"), "--dir", f"{tmp_path}::/w", "--",
               "/w/src", "/w/dst", "512")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "dst").read_bytes() == b"payload" * 1000
    done = run(str(WASM / "copyfile.wasm"), "--dir", f"{tmp_path}::/w:ro", "--",
               "/w/src", "/w/dst2", "512")
    assert done.returncode != 0 and not (tmp_path / "dst2").exists()
    assert b"Operation not permitted" in done.stderr


def test_no_dir_means_no_files(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"secret")
    done = run(str(WASM / "cat.wasm"), "--", str(tmp_path / "f"))
    assert done.returncode != 0 and b"secret" not in done.stdout


def test_policy_file_overrides_the_default(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('[gates]\ndefault = "allow"\n[[gates.rules]]\nnames = ["fd_write"]\n'
                      'action = "kill_process"\n')
    done = run(str(WASM / "lines.wasm"), "--policy", str(policy), "--", "3")
    assert done.returncode == 159 and done.stdout == b""
    assert b"fd_write" in done.stderr


def test_bad_dir_argument_is_a_usage_error(tmp_path: Path) -> None:
    done = run(str(WASM / "lines.wasm"), "--dir", "::/x")
    assert done.returncode == 2 and b"HOST::GUEST" in done.stderr
    done = run(str(WASM / "lines.wasm"), "--dir", f"{tmp_path}/missing::/x")
    assert done.returncode == 2 and b"cannot preopen" in done.stderr


def test_a_module_without_start_is_not_a_command() -> None:
    done = run(str(WASM / "hello.wasm"))
    assert done.returncode == 2 and b"not a WASI command" in done.stderr


@pytest.mark.parametrize("with_fs", [False, True])
def test_default_policy_shape(with_fs: bool) -> None:
    """The default grants no path_* gate unless --dir was given, and never sock_*."""
    policy = default_policy(with_fs)
    assert policy.gates is not None
    named = {name for rule in policy.gates.rules for name in rule.names}
    assert ("path_open" in named) is with_fs
    assert not any(name.startswith("sock_") for name in named)
