"""The wasi-testsuite (C and AssemblyScript preview1 binaries) on callgate and on wasmtime.

The suite lives next to the repository (``../shared/wasi-testsuite``; CI clones the
repo beside ``shared/``). Each ``NAME.wasm`` may have a ``NAME.json`` (legacy
spec: args, env, root dir, exit_code, stdout; missing keys and missing files take
the defaults of ``specification.md``). ``root`` is copied to a temporary dir,
preopened as ``/``, and ``*.cleanup`` leftovers are ignored because every run gets a
fresh copy. Running the same runner on wasmtime's native WASI proves the runner:
if a test failed there, the runner (not callgate) would be wrong.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import require
from native_wasi import run_native
from wasi_helpers import REPO, copy_tree, run_gated

from callgate.policy import load_policy


def _suite_root() -> Path:
    override = os.environ.get("WASI_TESTSUITE")
    candidates = [Path(override)] if override else []
    candidates += [REPO.parent / "shared" / "wasi-testsuite",
                   REPO / ".." / ".." / "shared" / "wasi-testsuite"]
    for candidate in candidates:
        if (candidate / "specification.md").is_file():
            return candidate.resolve()
    return candidates[0]


SUITE = _suite_root()
SUBDIRS = ("c", "assemblyscript")
DEFAULTS = {"args": [], "env": {}, "root": None, "exit_code": 0, "stdout": "", "stderr": None}


def _cases() -> list[Path]:
    return sorted(p for sub in SUBDIRS for p in (SUITE / sub).glob("*.wasm"))


def _spec(wasm: Path) -> dict:
    spec = dict(DEFAULTS)
    path = wasm.with_suffix(".json")
    if path.is_file():
        spec.update(json.loads(path.read_text()))
    return spec


# Every gate allowed: callgate's WASI is the only thing standing between guest and host.
ALLOW_ALL = load_policy("[gates]\ndefault = \"allow\"\n")

RUNNERS = {
    "callgate": lambda wasm, **kw: run_gated(wasm, policy=ALLOW_ALL, **kw),
    "wasmtime": run_native,
}


def test_suite_is_present() -> None:
    require(SUITE.is_dir(), f"the wasi-testsuite at {SUITE}")
    assert len(_cases()) >= 20, f"expected the C and AssemblyScript binaries in {SUITE}"


@pytest.mark.parametrize("engine", sorted(RUNNERS))
@pytest.mark.parametrize("wasm", _cases(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_wasi_testsuite(wasm: Path, engine: str, tmp_path: Path) -> None:
    spec = _spec(wasm)
    dirs = {}
    if spec["root"]:
        dirs["/"] = copy_tree(wasm.parent / spec["root"], tmp_path / "root")
    result = RUNNERS[engine](wasm, args=tuple(spec["args"]), env=dict(spec["env"]), dirs=dirs)
    assert result.code == spec["exit_code"], result.stderr.decode(errors="replace")
    assert result.stdout.decode() == spec["stdout"]
    if spec["stderr"] is not None:
        assert result.stderr.decode() == spec["stderr"]

