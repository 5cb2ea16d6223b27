"""The shipped syscall tables and the gate-name table, checked against independent sources.

Spot values are the kernel's own numbers (``arch/*/entry/syscalls``); the uapi
headers on this machine and libseccomp (via pyseccomp) are compared whole.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import require

from callgate.arch import get_arch
from callgate.arch.gate_numbers import WASI_GATES
from callgate.policy.names import (
    is_known_syscall,
    kernel_arch_names,
    suggestion,
    syscall_arches,
    wasi_gate_names,
)

# (arch, AUDIT_ARCH_* value, {name: number})
SPOT = [
    ("x86_64", 0xC000003E, {"read": 0, "write": 1, "uname": 63, "getppid": 110,
                            "openat": 257, "clone3": 435, "futex_requeue": 456}),
    ("aarch64", 0xC00000B7, {"openat": 56, "read": 63, "write": 64, "getppid": 173,
                             "clone3": 435}),
    ("x86", 0x40000003, {"read": 3, "getppid": 64, "socketcall": 102, "chown32": 212}),
    ("x32", 0xC000003E, {"read": 0x40000000, "rt_sigaction": 0x40000200}),
    ("arm", 0x40000028, {"read": 3, "getppid": 64, "set_tls": 0x0F0005}),
    ("riscv64", 0xC00000F3, {"read": 63, "riscv_flush_icache": 259}),
    ("s390x", 0x80000016, {"read": 3, "getppid": 64}),
    ("ppc64le", 0xC0000015, {"read": 3, "getppid": 64}),
]


@pytest.mark.parametrize(("name", "audit", "numbers"), SPOT, ids=[s[0] for s in SPOT])
def test_spot_numbers_and_audit_arch(name, audit, numbers):
    arch = get_arch(name)
    assert audit is None or arch.audit_arch == audit
    for syscall, nr in numbers.items():
        assert arch.number(syscall) == nr, syscall
        assert arch.name_of(nr) == syscall


@pytest.mark.parametrize("name", kernel_arch_names())
def test_tables_are_one_to_one_and_large(name):
    arch = get_arch(name)
    assert len(arch.numbers) > 300
    assert len(set(arch.numbers.values())) == len(arch.numbers)
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", n) for n in arch.numbers)


def uapi_numbers(header: Path) -> dict[str, int]:
    text = header.read_text()
    out = {}
    for m in re.finditer(r"#define __NR_(\w+)\s+(?:\(__X32_SYSCALL_BIT \+ )?(\d+)\)?", text):
        out[m.group(1)] = int(m.group(2)) + (0x40000000 if "X32_SYSCALL_BIT" in m.group(0)
                                             else 0)
    return out


@pytest.mark.parametrize(("name", "header"), [
    ("x86_64", "unistd_64.h"), ("x86", "unistd_32.h"), ("x32", "unistd_x32.h")])
def test_tables_agree_with_the_kernel_uapi_headers(name, header):
    path = Path("/usr/include/x86_64-linux-gnu/asm") / header
    require(path.exists(), f"kernel uapi header {path} (Debian linux-libc-dev)")
    uapi = uapi_numbers(path)
    assert len(uapi) > 300
    table = get_arch(name).numbers
    for syscall, nr in uapi.items():
        if syscall in table:
            assert table[syscall] == nr, syscall
    # The headers may be older than the table, never the other way round.
    missing = set(uapi) - set(table)
    assert missing <= {"fadvise64", "readdir", "olduname", "oldolduname"} | {
        n for n in missing if n.startswith(("old", "sys_", "uselib"))}, missing


@pytest.mark.parametrize("name", kernel_arch_names())
def test_tables_agree_with_libseccomp(name):
    require(importlib.util.find_spec("pyseccomp") is not None, "pyseccomp")
    import pyseccomp

    token = {"x86_64": pyseccomp.Arch.X86_64, "x86": pyseccomp.Arch.X86,
             "x32": pyseccomp.Arch.X32, "aarch64": pyseccomp.Arch.AARCH64,
             "arm": pyseccomp.Arch.ARM, "riscv64": pyseccomp.Arch.RISCV64,
             "s390x": pyseccomp.Arch.S390X, "ppc64le": pyseccomp.Arch.PPC64LE}[name]
    newer = _generator().NEWER_SYSCALLS  # unknown to this libseccomp: checked on the kernel
    for syscall, nr in get_arch(name).numbers.items():
        if syscall in newer:
            continue
        by_name = pyseccomp.resolve_syscall(token, syscall)
        # Multiplexed calls (socketcall/ipc on x86, s390x, ppc) resolve by name to one of
        # libseccomp's negative pseudo numbers; their direct number still maps back.
        assert by_name == nr or (by_name < 0 and pyseccomp.resolve_syscall(token, nr) ==
                                 syscall.encode()), syscall


def test_x32_table_uses_the_kernels_audit_arch():
    """The kernel reports x32 calls as AUDIT_ARCH_X86_64 with the x32 bit in nr; 0x4000003e
    is only libseccomp's API token. x86_64 keeps the value's name; x32's args are 32-bit."""
    from callgate.arch import arch_by_audit

    x32, x86_64 = get_arch("x32"), get_arch("x86_64")
    assert x32.audit_arch == x86_64.audit_arch == 0xC000003E
    assert arch_by_audit(0xC000003E) is x86_64
    assert (x32.arg_bits, x86_64.arg_bits, get_arch("x86").arg_bits) == (32, 64, 32)


def test_names_known_on_some_arch():
    where = syscall_arches()
    assert where["arch_prctl"] == ("x32", "x86", "x86_64")
    assert where["riscv_flush_icache"] == ("riscv64",)
    assert set(where["read"]) == set(kernel_arch_names())
    assert is_known_syscall("chown32") and not is_known_syscall("fd_write")
    assert "'read'" in suggestion("raed", where)
    assert suggestion("zzzzzz", where) == ""


def test_gate_name_table():
    names = wasi_gate_names()
    assert len(names) == 46 == len(WASI_GATES)
    gate_arch = get_arch("callgate")
    assert gate_arch.number("args_get") == 0
    assert gate_arch.number("fd_write") == 26
    assert gate_arch.number("path_open") == 31
    assert gate_arch.number("sock_shutdown") == 45
    assert "'fd_write'" in suggestion("fd_wrte", names)


def _generator():
    path = Path(__file__).resolve().parents[2] / "tools" / "gen_syscall_tables.py"
    spec = importlib.util.spec_from_file_location("gen_syscall_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_tables_are_what_the_generator_gives(tmp_path, capsys):
    import ctypes.util

    require(ctypes.util.find_library("seccomp") is not None, "libseccomp")
    generator = _generator()
    assert generator.main(["--check"]) == 0
    # A tampered copy is caught.
    for src in generator.OUT.glob("*.json"):
        (tmp_path / src.name).write_text(src.read_text())
    tampered = tmp_path / "aarch64.json"
    tampered.write_text(tampered.read_text().replace('"read": 63', '"read": 64'))
    generator.OUT = tmp_path
    assert generator.main(["--check"]) == 1
    assert "aarch64.json differs" in capsys.readouterr().err


TRACEFS = Path("/sys/kernel/tracing")
# Runs in its own process: enables one syscall tracepoint at a time, for this pid only,
# makes the call by number with zero args (each of these fails harmlessly) and reports
# whether the kernel traced it under the expected name.
TRACE_PROBE = r"""
import ctypes, json, os, sys
root, checks = sys.argv[1], json.loads(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def put(path, text):
    with open(os.path.join(root, path), "w") as f:
        f.write(text)
seen = {}
put("set_event_pid", str(os.getpid()))
try:
    for name, nr in checks.items():
        event = f"events/syscalls/sys_enter_{name}/enable"
        put("trace", "")
        put(event, "1")
        libc.syscall(nr, 0, 0, 0, 0, 0, 0)
        put(event, "0")
        with open(os.path.join(root, "trace")) as f:
            seen[name] = f" sys_{name}(" in f.read()
finally:
    put("set_event_pid", "")
print(json.dumps(seen))
"""


def test_newer_syscalls_are_what_this_kernel_calls_them():
    """The numbers libseccomp does not know yet, asked of the running kernel itself."""
    import json
    import os
    import platform
    import subprocess
    import sys

    require(platform.machine() == "x86_64", "an x86_64 kernel")
    require(os.geteuid() == 0, "root (to use the kernel's syscall tracepoints)")
    if not (TRACEFS / "events").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], check=False)
    require((TRACEFS / "events" / "syscalls").is_dir(), f"tracefs at {TRACEFS}")
    newer = _generator().NEWER_SYSCALLS
    missing = [n for n in newer if not (TRACEFS / "events/syscalls" / f"sys_enter_{n}").is_dir()]
    require(not missing, f"a kernel with the syscalls {missing} (v6.18 or later)")
    table = get_arch("x86_64").numbers
    checks = {name: table[name] for name in newer}
    assert checks == newer
    done = subprocess.run([sys.executable, "-c", TRACE_PROBE, str(TRACEFS), json.dumps(checks)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == dict.fromkeys(newer, True)
