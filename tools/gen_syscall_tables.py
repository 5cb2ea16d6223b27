#!/usr/bin/env python3
"""Regenerate ``callgate/arch/syscalls/*.json`` from the system's libseccomp.

Run during development only (``python tools/gen_syscall_tables.py``); the JSON
files are committed so users need no libseccomp. Each table maps syscall name to
number for one architecture, asking libseccomp to resolve every number in the
ranges that architecture uses. ``--check`` writes nothing and exits 1 if a
committed table differs from what this libseccomp gives.
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
        doc = {
            "arch": name,
            "audit_arch": token,
            "source": "libseccomp seccomp_syscall_resolve_num_arch",
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
        print(f"{name}: {len(table)} syscalls, audit arch {token:#x}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
