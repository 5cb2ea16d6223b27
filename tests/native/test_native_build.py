"""The native core is optional at install time: without a C compiler the wheel still
builds (saying why the core is missing) and callgate runs its pure-Python twins; with one,
the wheel carries the core and uses it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import require
from native_helpers import require_native

ROOT = Path(__file__).resolve().parents[2]
UNBUILT = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                 ".*cache", ".hypothesis", ".venv", "_core*.so")


def bdist_wheel_available() -> bool:
    # bdist_wheel is in setuptools from 70.1 (the test extra asks for it), else in wheel.
    version = importlib.metadata.version("setuptools").split(".")
    try:
        return (int(version[0]), int(version[1])) >= (70, 1) or \
            importlib.util.find_spec("wheel") is not None
    except ValueError:
        return True


def build_wheel(scratch: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    require(bdist_wheel_available(), "setuptools>=70.1 (bdist_wheel)")
    source = scratch / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=UNBUILT)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(scratch / "dist"), str(source)],
        cwd=scratch, env={**os.environ, **env}, capture_output=True, text=True, timeout=600,
        check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (wheel,) = (scratch / "dist").glob("callgate-*.whl")
    return done, wheel


def native_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return sorted(n for n in z.namelist() if n.startswith("callgate/native/"))


def run_installed(wheel: Path, scratch: Path, *code: str) -> subprocess.CompletedProcess[str]:
    target = scratch / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(target), str(wheel)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "CALLGATE_PURE_PYTHON"}
    env.update(PYTHONPATH=str(target), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *code], cwd=scratch, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_without_a_compiler_the_wheel_builds_and_runs_pure_python(tmp_path: Path) -> None:
    done, wheel = build_wheel(tmp_path, CC="/bin/false")
    assert "WARNING: callgate's native core (callgate.native._core) was not built" in \
        done.stdout + done.stderr
    files = native_files(wheel)
    assert "callgate/native/loader.py" in files
    assert not [n for n in files if n.endswith(".so")]
    status = run_installed(wheel, tmp_path, "-m", "callgate.native", "--require")
    assert status.returncode == 1
    assert status.stdout.startswith("pure Python: the native core is not built")


def test_with_a_compiler_the_wheel_carries_the_core(tmp_path: Path) -> None:
    require(shutil.which(os.environ.get("CC", "cc")) is not None, "a C compiler")
    _, wheel = build_wheel(tmp_path)
    assert [n for n in native_files(wheel) if n.endswith(".so")]
    assert "callgate/native/csrc/ticker.c" in native_files(wheel)  # an sdist could build it
    status = run_installed(wheel, tmp_path, "-m", "callgate.native", "--require")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("native core: ")


def test_a_core_built_from_other_sources_is_not_loaded(tmp_path: Path) -> None:
    """A core left from older sources keeps its function names (a changed struct does not
    show in them): the fingerprint of csrc/ compiled into it must match the files beside
    it, or the twins run and `python -m callgate.native` says why."""
    require_native()
    from callgate.native import loader
    from callgate.native.fingerprint import CSRC

    assert loader.native_status().native
    assert loader.stale_reason(loader._CORE) is None
    changed = tmp_path / "csrc"
    shutil.copytree(CSRC, changed)
    gate_c = changed / "gate.c"
    gate_c.write_text(gate_c.read_text() + "\n/* one more line */\n")
    reason = loader.stale_reason(loader._CORE, csrc=str(changed))
    assert reason is not None and "built from other sources" in reason
    assert loader.stale_reason(loader._CORE, csrc=str(changed), check_sources=False) is None
