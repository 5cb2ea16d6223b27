"""A built wheel works without the checkout: what the verbs read ships as package data.

The wheel is built from a copy of the source tree (so nothing is written into the
checkout), installed with ``pip install --target`` into a scratch directory, and run
from outside the checkout with that directory first on ``PYTHONPATH``, ahead of any
editable install of this checkout (whose finder comes after the path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parents[1]
# Not part of the source tree a wheel is built from; the wheel builds its own native core
# (*.so: one built in place by an editable install would stand in for that build).
UNBUILT = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".hypothesis", ".venv",
    "*.so",
)


def pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's files, installed under a scratch directory (the ``--target``)."""
    scratch = tmp_path_factory.mktemp("wheel")
    source = scratch / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=UNBUILT)
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w",
        str(scratch / "dist"), str(source), cwd=scratch)
    (wheel,) = (scratch / "dist").glob("callgate-*.whl")
    target = scratch / "site"
    pip("install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel),
        cwd=scratch)
    return target


def run_installed(target: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``argv`` from outside the checkout, with the installed wheel first on the path."""
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(list(argv), cwd=target.parent, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_the_installed_package_is_the_wheels(installed: Path) -> None:
    done = run_installed(installed, sys.executable, "-c",
                         "import callgate; print(callgate.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed)
    guests = installed / "callgate" / "learn" / "baseline_guests"
    shipped = sorted(p.name for p in guests.iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "callgate/learn/baseline_guests").iterdir())
    for name in shipped:  # the files themselves, not links back into a source tree
        assert not (guests / name).is_symlink()
        assert (guests / name).read_bytes() == (ROOT / "guests" / "wasm" / name).read_bytes()


def test_kernel_baseline_runs_from_the_wheel(installed: Path) -> None:
    require(shutil.which("strace") is not None, "strace")
    done = run_installed(installed, str(installed / "bin" / "callgate"), "kernel", "baseline",
                         "--rounds", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "# steady state" and "# exit" in lines
    assert any(line.split()[0] == "futex" for line in lines[1:])  # the loop really ran


def test_labs_run_from_the_wheel(installed: Path) -> None:
    """`callgate lab` needs no checkout: its guests, starters and solutions ship in the wheel."""
    guests = installed / "callgate" / "teach" / "labs" / "guests"
    assert sorted(p.name for p in guests.iterdir()) == sorted(
        p.name for p in (ROOT / "callgate/teach/labs/guests").iterdir())
    for path in guests.iterdir():  # the files themselves, not links back into a source tree
        assert not path.is_symlink()
        assert path.read_bytes() == (ROOT / "guests" / "wasm" / path.name).read_bytes()
    # Lab 1 runs guests in process, lab 8 in a child process, lab 10 the kernel in a fork.
    for number in ("1", "8", "10"):
        done = run_installed(installed, str(installed / "bin" / "callgate"), "lab", "check",
                             number, "--solution")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.endswith(f"lab {number} done.\n")


def test_readme_first_command_runs_from_the_wheel(installed: Path) -> None:
    """The README's first command, after its `pip install .`: the installed console script,
    run from the root of the checkout, prints what the README shows."""
    from test_readme import readme_run_command, shown_output

    argv = readme_run_command()
    env = {**os.environ, "PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([str(installed / "bin" / argv[0]), *argv[1:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shown_output()
