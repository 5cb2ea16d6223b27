"""Architectures a filter can be written for: their ``AUDIT_ARCH`` value and name table.

Kernel architectures carry the syscall table libseccomp knows for them (generated
by ``tools/gen_syscall_tables.py``). The ``callgate`` architecture is the gate
layer: its ``AUDIT_ARCH`` value is :data:`AUDIT_ARCH_CALLGATE` and its names are
the WASI preview1 gates. A gate filter and a kernel filter can never be mistaken
for each other because their first instruction checks different arch values.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType

from callgate.arch.gate_numbers import WASI_NUMBERS
from callgate.errors import CallgateError, suggestion

# 'CGAT' in ASCII. Real AUDIT_ARCH values are an ELF machine number (< 0x10000)
# plus the 64-bit (0x80000000) and little-endian (0x40000000) flags, so any value
# with bits set in 16..29 is none of them. Bit 30 says "little-endian", true of wasm.
AUDIT_ARCH_CALLGATE = 0x43474154
# The 64-bit flag of AUDIT_ARCH_* values (__AUDIT_ARCH_64BIT in linux/audit.h).
AUDIT_ARCH_64BIT = 0x80000000

# x32 syscalls on x86_64 carry this bit in nr; filters for x86_64 must reject them.
X32_SYSCALL_BIT = 0x40000000


class UnknownArchError(CallgateError, ValueError):
    """An architecture name callgate has no table for."""


class UnknownNameError(CallgateError, KeyError):
    """A syscall or gate name that the chosen architecture does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Arch:
    """One architecture: its name, ``AUDIT_ARCH_*`` value and name ↔ number table."""

    name: str
    audit_arch: int
    numbers: Mapping[str, int]
    names: Mapping[int, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", MappingProxyType({v: k for k, v in self.numbers.items()}))

    @property
    def is_gate_layer(self) -> bool:
        return self.audit_arch == AUDIT_ARCH_CALLGATE

    @property
    def is_x32(self) -> bool:
        """x32 shares x86_64's ``AUDIT_ARCH`` value; its calls set ``X32_SYSCALL_BIT`` in nr."""
        return self.name == "x32"

    @property
    def arg_bits(self) -> int:
        """How wide this ABI's syscall arguments are: 64 for a 64-bit arch, but x32 (a
        32-bit ABI on the 64-bit arch value) and every 32-bit arch pass 32-bit values."""
        return 64 if self.audit_arch & AUDIT_ARCH_64BIT and not self.is_x32 else 32

    def number(self, name: str) -> int:
        """The number of syscall (or gate) ``name``; :class:`UnknownNameError`, with the
        closest names this arch has, if it has no such name."""
        try:
            return self.numbers[name]
        except KeyError:
            what = "gate" if self.is_gate_layer else "syscall"
            raise UnknownNameError(f"unknown {what} {name!r} on arch {self.name}"
                                   f"{suggestion(name, self.numbers)}") from None

    def name_of(self, nr: int) -> str | None:
        return self.names.get(nr)


# Friendly aliases users type, mapped to libseccomp's table names.
_ALIASES = {
    "amd64": "x86_64",
    "i386": "x86",
    "i686": "x86",
    "arm64": "aarch64",
    "gate": "callgate",
    "gates": "callgate",
    "wasm": "callgate",
}


@cache
def _kernel_arch(name: str) -> Arch:
    path = resources.files("callgate.arch") / "syscalls" / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UnknownArchError(
            f"unknown arch {name!r}{suggestion(name, [*known_arches(), *_ALIASES])}; "
            f"known: {', '.join(known_arches())}"
        ) from None
    return Arch(doc["arch"], doc["audit_arch"], MappingProxyType(doc["syscalls"]))


GATE_ARCH = Arch("callgate", AUDIT_ARCH_CALLGATE, MappingProxyType(dict(WASI_NUMBERS)))


def known_arches() -> list[str]:
    files = resources.files("callgate.arch") / "syscalls"
    return ["callgate", *sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".json"))]


def get_arch(name: str) -> Arch:
    """Look an architecture up by name (``x86_64``, ``aarch64``, ``callgate`` …)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key == "callgate":
        return GATE_ARCH
    return _kernel_arch(key)


def native_arch() -> Arch:
    """The architecture of the running kernel, for kernel-layer defaults."""
    return get_arch(platform.machine())


def arch_by_audit(value: int) -> Arch | None:
    """The architecture whose ``AUDIT_ARCH`` value is ``value``, if callgate knows one."""
    for name in known_arches():
        arch = get_arch(name)
        if arch.audit_arch == value and not arch.is_x32:  # the value is x86_64's
            return arch
    return None
