#!/usr/bin/env python3
"""Regenerate ``callgate/arch/syscalls/*.json`` from the system's libseccomp.

Run during development only (``python tools/gen_syscall_tables.py``); the JSON
files are committed so users need no libseccomp. Each table maps syscall name to
number for one architecture, asking libseccomp to resolve every number in the
ranges that architecture uses, plus :data:`NEWER_SYSCALLS` where libseccomp is
older than the kernel. ``--check`` writes nothing and exits 1 if a committed
table differs from what this libseccomp gives.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "callgate" / "arch" / "syscalls"

# libseccomp arch name -> the number ranges its syscalls live in.
RANGES: dict[str, list[range]] = {
    "x86_64": [range(0, 1024)],
    "x32": [range(0x40000000, 0x40000000 + 1024)],
    "x86": [range(0, 1024)],
    "aarch64": [range(0, 1024)],
    "arm": [range(0, 1024), range(0x0F0000, 0x0F0010)],
    "riscv64": [range(0, 1024)],
    "s390x": [range(0, 1024)],
    "ppc64le": [range(0, 1024)],
}

# Syscalls Linux added after the tables of libseccomp 2.5.4 (Debian 12's), up to v6.18.
# Since v5.1 (424, pidfd_send_signal) every arch gives a new syscall the same number
# (x32 with its 0x40000000 bit), so one list serves every table. Checked against the
# running kernel's syscall tracepoints by tests/policy/test_tables.py.
NEWER_SYSCALLS: dict[str, int] = {
    "statmount": 457, "listmount": 458, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
    "lsm_list_modules": 461, "mseal": 462, "setxattrat": 463, "getxattrat": 464,
    "listxattrat": 465, "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468,
    "file_setattr": 469,
}
X32_SYSCALL_BIT = 0x40000000
# What the kernel puts in seccomp_data.arch where libseccomp's token differs: x32 calls
# come as AUDIT_ARCH_X86_64 with X32_SYSCALL_BIT in nr (libseccomp's 0x4000003e is a
# token of its own API, never seen by a filter).
KERNEL_AUDIT_ARCH = {"x32": 0xC000003E}


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    OUT.mkdir(parents=True, exist_ok=True)
    stale = False
    for name, ranges in RANGES.items():
        token = lib.seccomp_arch_resolve_name(name.encode())
        if not token:
            print(f"libseccomp does not know arch {name}", file=sys.stderr)
            return 1
        table: dict[str, int] = {}
        for r in ranges:
            for nr in r:
                p = lib.seccomp_syscall_resolve_num_arch(token, nr)
                if p:
                    table.setdefault(ctypes.string_at(p).decode(), nr)
                    libc.free(p)
        base = X32_SYSCALL_BIT if name == "x32" else 0
        for newer, nr in NEWER_SYSCALLS.items():
            table.setdefault(newer, base + nr)  # a newer libseccomp's own entry wins
        doc = {
            "arch": name,
            "audit_arch": KERNEL_AUDIT_ARCH.get(name, token),
            "source": "libseccomp seccomp_syscall_resolve_num_arch, plus syscalls of newer "
                      "kernels (tools/gen_syscall_tables.py NEWER_SYSCALLS)",
            "syscalls": dict(sorted(table.items(), key=lambda kv: kv[1])),
        }
        text = json.dumps(doc, indent=1) + "\n"
        path = OUT / f"{name}.json"
        if check:
            if not path.exists() or path.read_text() != text:
                print(f"{path} differs from libseccomp's table", file=sys.stderr)
                stale = True
            continue
        path.write_text(text)
        print(f"{name}: {len(table)} syscalls, audit arch {doc['audit_arch']:#x}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
