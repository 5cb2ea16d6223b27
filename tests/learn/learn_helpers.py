"""Shared plumbing for the ``callgate learn`` tests: paths and running the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WASM = REPO / "guests" / "wasm"
CALLGATE = [sys.executable, "-m", "callgate"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``callgate ARGS`` in a subprocess, as a user runs it (stdin closed)."""
    return subprocess.run([*CALLGATE, *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=env)


def audit_records(path: Path) -> list[dict]:
    """The audit file's records; a file never created means none."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
