"""Every host syscall a WASI gate makes is declared in its ``GateSpec.syscalls``.

The kernel layer builds the host's seccomp allowlist from those declarations, so
a missing one would get the host killed the first time that gate runs under
lockdown. This test runs real guests under ``strace -f`` with a marker around
each gate call and checks each gate's observed syscalls against its declaration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from conftest import require

from callgate.bpf.actions import SECCOMP_RET_ALLOW
from callgate.gates.wasi import wasi_specs
from callgate.policy import load_policy

BASELINE = Path(__file__).resolve().parents[2] / "policies" / "runtime-baseline.toml"

DRIVER = Path(__file__).with_name("syscall_driver.py")
BEGIN = "callgate-marker/begin/"
LINE = re.compile(r"^(\d+)\s+(\w+)\(")


def test_gates_declare_the_syscalls_they_make(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    require(strace is not None, "strace")
    trace = tmp_path / "trace"
    subprocess.run([strace, "-f", "-qq", "-o", str(trace), sys.executable, str(DRIVER)],
                   check=True, timeout=300, stdin=subprocess.DEVNULL, capture_output=True)
    seen: dict[str, set[str]] = defaultdict(set)
    current: dict[str, str] = {}
    for line in trace.read_text().splitlines():
        match = LINE.match(line)
        if not match:
            continue
        pid, name = match.groups()
        if BEGIN in line:
            current[pid] = line.split(BEGIN)[1].split('"')[0]
        elif "callgate-marker/end" in line:
            current.pop(pid, None)
        elif pid in current:
            seen[current[pid]].add(name)
    # The runtime's baseline (malloc's brk/mmap, futex, ...) is allowed whatever the gates.
    kernel = load_policy(BASELINE).kernel
    assert kernel is not None
    always = {name for rule in kernel.rules if rule.action == SECCOMP_RET_ALLOW and not rule.args
              for name in rule.names}
    declared = {spec.name: spec.syscalls | always for spec in wasi_specs()}
    assert len(seen) >= 25, sorted(seen)  # the guests really exercised the gates
    assert "read" in seen["fd_read"] and "openat2" in seen["path_open"]
    missing = {gate: sorted(names - declared[gate]) for gate, names in seen.items()
               if names - declared[gate]}
    assert missing == {}
