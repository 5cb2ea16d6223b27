"""Shared test plumbing.

``require`` implements the house rule for optional tools: a test that needs a
missing tool skips on a developer machine, but fails under ``CI=true``, where the
CI script is responsible for installing everything.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"

# The suite (and every callgate it starts) keeps compiled modules in a cache of its own,
# never in the user's ~/.cache; tests of the cache itself point it elsewhere.
if "CALLGATE_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="callgate-test-cache-")
    os.environ["CALLGATE_CACHE_DIR"] = os.path.join(_CACHE, "modules")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (under CI=true) when ``what`` is not available."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true; .ci/run must install it")
    pytest.skip(f"{what} is not available")


def console_script(name: str = "callgate") -> Path | None:
    """``name`` as installed into this interpreter's environment, or None.

    Found next to ``sys.executable`` (not resolved: a venv's bin directory), not on PATH,
    where a script of the same name may belong to another environment.
    """
    script = Path(sys.executable).parent / name
    return script if script.is_file() and os.access(script, os.X_OK) else None
