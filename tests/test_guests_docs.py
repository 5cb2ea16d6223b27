"""The host-side example in docs/guests.md runs and prints what its comments say."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_host_side_example_prints_what_it_promises() -> None:
    doc = (ROOT / "docs" / "guests.md").read_text()
    section = doc.split("## From the host side", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/guests.md lost its host-side example"
    promised = [ast.literal_eval(m) for m in re.findall(r"print\(.*?\)\s+# (b'[^']*')", code[1])]
    assert len(promised) == 4
    run = subprocess.run([sys.executable, "-c", code[1]], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert [ast.literal_eval(line) for line in run.stdout.splitlines()] == promised
