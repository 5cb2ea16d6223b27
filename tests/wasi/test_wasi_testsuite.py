"""The wasi-testsuite's preview1 binaries on callgate and on wasmtime, with one runner.

The suite lives next to the repository (``../shared/wasi-testsuite``; CI clones the
repo beside ``shared/``; ``WASI_TESTSUITE=/path`` points elsewhere). Every
``*.wasm`` below it is a test — the C and AssemblyScript directories that ship
there, and any other language directory (e.g. the Rust tests) a user drops in.
``NAME.json`` is read in either format of ``specification.md`` (legacy keys or
``operations``; a missing file or key takes the defaults); each preopened
directory is copied to a temporary dir first, so ``*.cleanup`` leftovers never
matter. Running the same runner on wasmtime's native WASI proves the runner: if
a test failed there, the runner (not callgate) would be wrong.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import require
from native_wasi import Run, run_native
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


def _cases() -> list[Path]:
    """Every test module under the suite (c/, assemblyscript/, and any other language
    directory a user adds, e.g. rust/), but not files inside fixture directories."""
    found = (p for p in SUITE.rglob("*.wasm")
             if not any(part.endswith(".dir") for part in p.relative_to(SUITE).parts[:-1]))
    return sorted(found)


def _spec(wasm: Path) -> dict:
    """The test's expectations, from either spec format of ``specification.md``.

    Legacy: ``args``, ``env``, ``root`` (preopened as ``/``), ``dirs`` (each preopened
    under its own name), ``exit_code``, ``stdout``, ``stderr``. Operation-based: a
    ``run`` then a ``wait``, with ``read`` checks of stdout/stderr in between.
    """
    path = wasm.with_suffix(".json")
    raw = json.loads(path.read_text()) if path.is_file() else {}
    spec = {"args": [], "env": {}, "dirs": {}, "exit_code": 0, "stdout": None, "stderr": None,
            "proposals": raw.get("proposals", [])}
    ops = raw.get("operations")
    if ops is None:  # legacy: the same as run + read(stdout) + wait
        # As the suite's own runner reads it: stdout and stderr are checked only when given.
        ops = [{"type": "run", **{k: raw[k] for k in ("args", "env", "root", "dirs")
                                  if k in raw}},
               *({"type": "read", "id": stream, "payload": raw[stream]}
                 for stream in ("stdout", "stderr") if raw.get(stream) is not None),
               {"type": "wait", "exit_code": raw.get("exit_code", 0)}]
    for op in ops:
        kind = op.get("type")
        if kind == "run":
            spec["args"], spec["env"] = op.get("args", []), op.get("env", {})
            if op.get("root"):
                spec["dirs"]["/"] = op["root"]
            for name in op.get("dirs", []):
                spec["dirs"][name] = name
        elif kind == "wait":
            spec["exit_code"] = op.get("exit_code", 0)
        elif kind == "read":
            spec[op.get("id", "stdout")] = op.get("payload", "")
        else:
            spec["proposals"] = [*spec["proposals"], kind]
    return spec


# Every gate allowed: callgate's WASI is the only thing standing between guest and host.
ALLOW_ALL = load_policy("[gates]\ndefault = \"allow\"\n")


def _load_adapter() -> ModuleType:
    """tools/wasi_testsuite_adapter.py, the runtime adapter for the suite's own runner."""
    path = REPO / "tools" / "wasi_testsuite_adapter.py"
    spec = importlib.util.spec_from_file_location("wasi_testsuite_adapter", path)
    assert spec is not None and spec.loader is not None
    adapter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adapter)
    adapter.CALLGATE = [sys.executable, "-m", "callgate"]  # this venv's callgate
    return adapter


ADAPTER = _load_adapter()


def run_cli(wasm: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
            dirs: dict[str, Path] | None = None) -> Run:
    """The test as the suite's runner runs it through the adapter: `callgate run`."""
    assert set(dirs or {}) <= {"/"}, "the suite preopens only a root"
    argv = ADAPTER.compute_argv(str(wasm), (list(args), env or {}, (dirs or {}).get("/")),
                                [], "wasi:cli/command", "wasm32-wasip1")
    done = subprocess.run(argv, capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                          check=False)
    return Run(done.returncode, done.stdout, done.stderr)


RUNNERS = {
    "callgate": lambda wasm, **kw: run_gated(wasm, policy=ALLOW_ALL, **kw),
    "callgate-cli": run_cli,
    "wasmtime": run_native,
}


def test_the_adapter_is_what_the_suites_runner_loads() -> None:
    """The runner runs an adapter file as a script first: a module adapter prints nothing
    (a legacy one would print a version); then it asks the module who it is."""
    path = REPO / "tools" / "wasi_testsuite_adapter.py"
    done = subprocess.run([sys.executable, str(path), "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    from callgate import __version__

    assert (ADAPTER.get_name(), ADAPTER.get_version()) == ("callgate", __version__)
    assert ADAPTER.get_wasi_versions() == ["wasm32-wasip1"]
    argv = ADAPTER.compute_argv("t.wasm", (["-a", "b"], {"K": "v"}, "/r"), [],
                                "wasi:cli/command", "wasm32-wasip1")
    assert argv == [*ADAPTER.CALLGATE, "run", "--policy", "allow-all", "--env", "K=v",
                    "--dir", "/r::/", "t.wasm", "--", "-a", "b"]


def test_suite_is_present() -> None:
    require(SUITE.is_dir(), f"the wasi-testsuite at {SUITE}")
    assert len(_cases()) >= 20, f"expected the C and AssemblyScript binaries in {SUITE}"


@pytest.mark.parametrize("engine", sorted(RUNNERS))
@pytest.mark.parametrize("wasm", _cases(), ids=lambda p: str(p.relative_to(SUITE).with_suffix("")))
def test_wasi_testsuite(wasm: Path, engine: str, tmp_path: Path) -> None:
    spec = _spec(wasm)
    if spec["proposals"]:
        pytest.skip(f"needs WASI proposals beyond preview1: {spec['proposals']}")
    dirs = {guest: copy_tree(wasm.parent / src, tmp_path / f"dir{i}")
            for i, (guest, src) in enumerate(spec["dirs"].items())}
    result = RUNNERS[engine](wasm, args=tuple(spec["args"]), env=dict(spec["env"]), dirs=dirs)
    assert result.code == spec["exit_code"], result.stderr.decode(errors="replace")
    for stream in ("stdout", "stderr"):
        if spec[stream] is not None:
            assert getattr(result, stream).decode() == spec[stream], stream


def test_spec_formats_are_read_alike(tmp_path: Path) -> None:
    """A legacy spec and its operation-based spelling mean the same test."""
    legacy = tmp_path / "a.json"
    legacy.write_text(json.dumps({"args": ["x"], "env": {"K": "v"}, "root": "r.dir",
                                  "exit_code": 3, "stdout": "out"}))
    ops = tmp_path / "b.json"
    ops.write_text(json.dumps({"operations": [
        {"type": "run", "args": ["x"], "env": {"K": "v"}, "root": "r.dir"},
        {"type": "read", "id": "stdout", "payload": "out"},
        {"type": "wait", "exit_code": 3}]}))
    a, b = _spec(tmp_path / "a.wasm"), _spec(tmp_path / "b.wasm")
    assert a == b
    assert a["dirs"] == {"/": "r.dir"} and a["exit_code"] == 3 and a["stdout"] == "out"
    missing = _spec(tmp_path / "missing.wasm")
    assert missing["exit_code"] == 0
    assert missing["stdout"] is None and missing["stderr"] is None, "unchecked unless given"


@pytest.mark.parametrize("wasm", _cases(), ids=lambda p: str(p.relative_to(SUITE).with_suffix("")))
def test_a_learned_policy_passes_the_test_again_under_both_layers(wasm: Path,
                                                                  tmp_path: Path) -> None:
    """`callgate learn` on a conformance program it has never seen, then the same test
    under the learned policy alone, in a process its [kernel] section has locked: the
    test still passes and not one call is denied."""
    spec = _spec(wasm)
    if spec["proposals"]:
        pytest.skip(f"needs WASI proposals beyond preview1: {spec['proposals']}")
    options = [f"--env={key}={value}" for key, value in spec["env"].items()]

    def callgate(verb: list[str], copy: str) -> subprocess.CompletedProcess:
        dirs = [f"--dir={copy_tree(wasm.parent / src, tmp_path / copy / str(i))}::{guest}"
                for i, (guest, src) in enumerate(spec["dirs"].items())]
        return subprocess.run([sys.executable, "-m", "callgate", *verb, str(wasm), *dirs,
                               *options, "--", *spec["args"]], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    policy, audit = tmp_path / "learned.toml", tmp_path / "audit.jsonl"
    learned = callgate(["learn", "-o", str(policy)], "learning")
    assert learned.returncode == 0, learned.stderr
    rerun = callgate(["run", "--kernel", "--policy", str(policy), "--audit", str(audit)],
                     "rerun")
    assert rerun.returncode == spec["exit_code"], rerun.stderr
    if spec["stdout"] is not None:
        assert rerun.stdout == spec["stdout"]
    assert audit.read_text() == ""  # no call denied, trapped or logged
