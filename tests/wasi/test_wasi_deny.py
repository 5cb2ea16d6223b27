"""Deny semantics: which errno a policy answers with changes what a wasi-libc program does.

``config`` (guests/src/config.c) reads an optional config file. wasi-libc hands
the gate's errno to the program unchanged, and the program treats ENOSYS as "no
filesystem here, run on defaults" but EPERM as "forbidden, stop". The same guest
under wasmtime with ``path_open`` stubbed to answer that errno is the reference:
a callgate denial must look to the program exactly like a host without the call.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime
from native_wasi import StubFactory, run_native
from wasi_helpers import run_gated

from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.cli.run_verb import default_policy
from callgate.policy import load_policy


def _denying(gate: str, errno: str) -> object:
    """The shipped default with the filesystem overlay, except ``gate`` answers ``errno``."""
    base = default_policy(with_fs=True)
    text = f'[gates]\ndefault = "allow"\n[[gates.rules]]\nnames = ["{gate}"]\n' \
           f'action = "errno({errno})"\n'
    extra = load_policy(text).gates
    assert base.gates is not None and extra is not None
    gates = type(base.gates)(default=base.gates.default, rules=base.gates.rules + extra.rules)
    return type(base)(gates=gates)


def _path_open_stub(errno: int) -> StubFactory:
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    sig = wasmtime.FuncType([i32, i32, i32, i32, i32, i64, i64, i32, i32], [i32])
    return lambda store: wasmtime.Func(store, sig, lambda *args: errno)


@pytest.mark.parametrize("errno, code, stdout, stderr", [
    ("ENOSYS", 0, b"config: none, using defaults\n", b""),
    ("EPERM", 1, b"", b"config: /c/app.conf: Operation not permitted\n"),
])
def test_path_open_errno_changes_the_program_path(tmp_path: Path, errno: str, code: int,
                                                  stdout: bytes, stderr: bytes) -> None:
    (tmp_path / "app.conf").write_text("colour = blue\n")
    gated = run_gated("config", ("/c/app.conf",), dirs={"/c": tmp_path},
                      policy=_denying("path_open", errno))
    assert (gated.code, gated.stdout, gated.stderr) == (code, stdout, stderr)
    native = run_native("config", ("/c/app.conf",), dirs={"/c": tmp_path},
                        stubs={"path_open": _path_open_stub(WASI_ERRNO[errno])})
    assert (native.code, native.stdout, native.stderr) == (gated.code, gated.stdout,
                                                           gated.stderr)


def test_allowed_path_open_reads_the_config(tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("colour = blue\n")
    run = run_gated("config", ("/c/app.conf",), dirs={"/c": tmp_path},
                    policy=default_policy(with_fs=True))
    assert (run.code, run.stdout) == (0, b"config: colour = blue\n")


@pytest.mark.parametrize("errno, code", [("ENOSYS", 0), ("EPERM", 1)])
def test_fd_allocate_errno_decides_the_fallback(tmp_path: Path, errno: str, code: int) -> None:
    run = run_gated("fallback", ("/w/f", "10000"), dirs={"/w": tmp_path},
                    policy=_denying("fd_allocate", errno))
    assert run.code == code
    size = (tmp_path / "f").stat().st_size
    assert size == (10000 if errno == "ENOSYS" else 0)


def test_default_policy_without_dirs_has_no_filesystem_gates(tmp_path: Path) -> None:
    """Without --dir the default answers path_open with ENOSYS even if a preopen existed."""
    (tmp_path / "app.conf").write_text("colour = blue\n")
    run = run_gated("config", ("/c/app.conf",), dirs={"/c": tmp_path},
                    policy=default_policy(with_fs=False))
    assert (run.code, run.stdout) == (0, b"config: none, using defaults\n")
