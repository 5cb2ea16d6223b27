"""Run the wasi-testsuite's own test runner against callgate.

The suite's runner (github.com/WebAssembly/wasi-testsuite, ``test-runner/``) loads a
*runtime adapter*: a module that says which runtime it is and turns a test into a
command line. This one runs each test as ``callgate run`` under the allow-all policy,
the test's directory preopened as ``/``, its env and args passed on, so the suite sees
callgate's gated WASI exactly as a user's ``callgate run`` does::

    python run-tests --runtime-adapter /path/to/callgate/tools/wasi_testsuite_adapter.py

``CALLGATE`` names the command (default ``callgate``; e.g. ``"python -m callgate"``),
and may add options, as the suite's own adapters read ``WASMTIME`` and the like. Only
preview1 command tests apply: callgate implements ``wasi_snapshot_preview1``.
``tests/wasi/test_wasi_testsuite.py`` drives every test of the suite through
:func:`compute_argv` (its ``callgate-cli`` engine).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

CALLGATE = shlex.split(os.environ.get("CALLGATE", "callgate"))


def get_name() -> str:
    return "callgate"


def get_version() -> str:
    done = subprocess.run([*CALLGATE, "--version"], capture_output=True, text=True,
                          check=True)
    return done.stdout.split()[-1]  # "callgate X.Y.Z"


def get_wasi_versions() -> list[str]:
    return ["wasm32-wasip1"]


def get_wasi_worlds() -> list[str]:
    return ["wasi:cli/command"]


def get_timeout_seconds() -> float:
    return 30.0  # a cold start compiles the module once (then it is cached)


def compute_argv(test_path: str,
                 args_env_root: tuple[list[str], dict[str, str], Path | str | None],
                 proposals: list[str], wasi_world: str, wasi_version: str) -> list[str]:
    """The command line for one test (the runner's arguments, in its order)."""
    del proposals, wasi_world, wasi_version  # only preview1 commands are offered above
    args, env, root = args_env_root
    argv = [*CALLGATE, "run", "--policy", "allow-all"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if root:
        argv += ["--dir", f"{root}::/"]
    return [*argv, test_path, "--", *args]
