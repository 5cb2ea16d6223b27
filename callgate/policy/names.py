"""Which names a policy may use: syscalls on every known arch, and gates.

A kernel policy is written once and compiled per arch, so a syscall name is
valid if *some* architecture has it (``arch_prctl`` exists only on x86_64;
``riscv_flush_icache`` only on riscv64); the compiler skips it elsewhere. A
name no architecture has is almost always a typo, and gets a suggestion.

Gate names are the WASI preview1 functions plus app-defined gates, which only
the application knows: it passes them in, or the policy declares them.
"""

from __future__ import annotations

from functools import cache

from callgate.arch import get_arch, known_arches
from callgate.arch.gate_numbers import WASI_GATES
from callgate.errors import suggestion as suggestion  # the one "did you mean", re-exported


@cache
def kernel_arch_names() -> tuple[str, ...]:
    """Every kernel architecture callgate ships a syscall table for."""
    return tuple(name for name in known_arches() if name != "callgate")


@cache
def syscall_arches() -> dict[str, tuple[str, ...]]:
    """syscall name -> the architectures that have it."""
    where: dict[str, list[str]] = {}
    for arch_name in kernel_arch_names():
        for name in get_arch(arch_name).numbers:
            where.setdefault(name, []).append(arch_name)
    return {name: tuple(arches) for name, arches in where.items()}


def is_known_syscall(name: str) -> bool:
    return name in syscall_arches()


def wasi_gate_names() -> frozenset[str]:
    return frozenset(WASI_GATES)

