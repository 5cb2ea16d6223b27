"""A deadline still fires in a process sealed by seccomp, on either ticker.

Lockdown comes after loading, and the runtime baseline grants no ``clone``: the ticker
thread must already exist, and what it does while ticking (a timed futex wait; clock
reads are vDSO calls) must be in the baseline. A ticker that broke either rule would
get the CLI killed with SIGSYS instead of ending the call with DeadlineExceeded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.native import FORCE_PURE_PYTHON

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "wasm"
TRAP_EXIT = 128 + 6  # what `callgate run` returns for a wasm trap


@pytest.mark.parametrize("mode", ["--kernel", "--isolate"])
@pytest.mark.parametrize("pure", ["0", "1"], ids=["default-ticker", "python-twin"])
def test_a_sealed_run_ends_a_spinning_guest_at_its_deadline(mode: str, pure: str) -> None:
    env = {**os.environ, FORCE_PURE_PYTHON: pure}
    done = subprocess.run(
        [sys.executable, "-m", "callgate", "run", str(GUESTS / "hostile_spin.wasm"), mode,
         "--timeout", "0.5"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        check=False)
    assert done.returncode == TRAP_EXIT, done.stderr
    assert "past its deadline" in done.stderr
