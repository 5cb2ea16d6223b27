"""Hostile guests try to leave their preopen; every attempt fails and the host is untouched.

Layout of each test: ``tmp/outside/`` holds the host's files (``secret`` and
friends); ``tmp/sandbox/`` is preopened as the guest's fd 3. From inside the
sandbox ``../outside/secret`` names a real host file, so a naive ``..``, symlink,
hard-link or rename implementation *would* reach it. After the guest ran, every
byte, name and mtime outside the sandbox must be as before.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from wasi_helpers import run_gated, tree

OUTSIDE_FILES = {"secret": b"SECRET host data\n", "other": b"other\n"}


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, data in OUTSIDE_FILES.items():
        (outside / name).write_bytes(data)
        os.utime(outside / name, ns=(10**18, 10**18))
    (outside / "dir").mkdir()
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    return outside, sandbox


def _host_view(tmp_path: Path) -> dict:
    """Everything outside the sandbox: tree contents plus every mtime."""
    view = {name: entry for name, entry in tree(tmp_path).items()
            if not name.startswith("sandbox")}
    times = {str(p.relative_to(tmp_path)): p.lstat().st_mtime_ns
             for p in (tmp_path / "outside").rglob("*")}
    return {"tree": view, "mtimes": times}


def _attempts(stdout: bytes) -> dict[str, int]:
    out = {}
    for line in stdout.decode().splitlines():
        label, _, errno = line.rpartition(" ")
        out[label] = int(errno)
    return out


# Lines that may succeed: making a symlink only stores text, and renaming or hard-linking
# a symlink *itself* stays inside. Everything else must fail.
HARMLESS = ("symlink ", "link nofollow sl", "rename symlink itself")


@pytest.mark.parametrize("guest", ["escape_dotdot", "escape_absolute", "escape_symlink",
                                   "escape_proc", "escape_hardlink", "escape_rename"])
def test_escape_is_denied_and_host_untouched(guest: str, tmp_path: Path) -> None:
    outside, sandbox = _layout(tmp_path)
    before = _host_view(tmp_path)
    run = run_gated(guest, (str(outside),), dirs={"/sandbox": sandbox})
    assert run.code == 0, run.stderr
    attempts = _attempts(run.stdout)
    assert len(attempts) >= 6
    succeeded = [label for label, errno in attempts.items()
                 if errno == 0 and not label.startswith(HARMLESS)]
    assert succeeded == []
    assert _host_view(tmp_path) == before
    assert (outside / "secret").read_bytes() == OUTSIDE_FILES["secret"]


def test_dotdot_and_absolute_answer_eperm(tmp_path: Path) -> None:
    """wasmtime's answer for a path that leaves the preopen is EPERM (63); so is ours."""
    outside, sandbox = _layout(tmp_path)
    attempts = _attempts(run_gated("escape_dotdot", dirs={"/sandbox": sandbox}).stdout)
    assert attempts["open ../secret"] == 63
    assert attempts["open sub/../../secret"] == 63
    attempts = _attempts(run_gated("escape_absolute", (str(outside),),
                                   dirs={"/sandbox": sandbox}).stdout)
    assert attempts[f"open {outside}/secret"] == 63


def test_symlinks_inside_still_work(tmp_path: Path) -> None:
    """The defence is resolution beneath the preopen, not refusing symlinks: one that stays
    inside is followed."""
    _, sandbox = _layout(tmp_path)
    (sandbox / "real").mkdir()
    (sandbox / "real" / "secret").write_bytes(b"mine")
    (sandbox / "flip").symlink_to("real")
    run = run_gated("escape_race", ("1",), dirs={"/sandbox": sandbox})
    assert run.stdout == b"opened 1 denied 0\n"
    assert (sandbox / "real" / "secret").read_bytes() == b"PWNED"


@pytest.mark.parametrize("mode", ["open", "unlink", "rename", "mkdir", "utimes"])
def test_race_swapping_dir_for_symlink(mode: str, tmp_path: Path) -> None:
    """A host thread flips sandbox/flip between a directory and a symlink to ../outside
    while the guest works on flip/secret in a loop (open for writing, unlink, rename
    away, mkdir beside it, set its times)."""
    outside, sandbox = _layout(tmp_path)
    (sandbox / "flip").mkdir()
    (sandbox / "flip" / "secret").write_bytes(b"inside")
    (sandbox / "link").symlink_to("../outside")
    before = _host_view(tmp_path)
    stop = threading.Event()
    flips = [0]

    def flipper() -> None:
        flip, parked, link = sandbox / "flip", sandbox / "parked", sandbox / "link"
        while not stop.is_set():
            os.rename(flip, parked)
            os.rename(link, flip)      # flip -> ../outside
            os.rename(flip, link)
            os.rename(parked, flip)    # flip is a directory again
            if not (flip / "secret").exists():
                (flip / "secret").write_bytes(b"inside")  # give unlink something to do
            flips[0] += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=flipper)
    thread.start()
    try:
        run = run_gated("escape_race", ("2000", mode), dirs={"/sandbox": sandbox})
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)
    opened, denied = (int(x) for x in run.stdout.split()[1::2])
    assert opened + denied == 2000
    assert flips[0] > 0 and denied > 0, "the race never happened; the test proved nothing"
    assert _host_view(tmp_path) == before
    assert (outside / "secret").read_bytes() == OUTSIDE_FILES["secret"]
