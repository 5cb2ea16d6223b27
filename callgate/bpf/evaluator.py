"""The runtime's filter: verified once, constant results in a table, the rest compiled.

A gate asks the same filter millions of times, always with its own ``nr``.
:class:`Evaluator` pays for verification and the constant-action analysis once;
a number whose result does not depend on the arguments is answered from a table,
any other number gets the program specialised for it (the arch check and the
number dispatch run ahead, see :mod:`callgate.bpf.specialize`) and compiled, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from callgate.bpf.compiled import CompiledFilter, compile_program
from callgate.bpf.constant import constant_actions
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import U32_MASK
from callgate.bpf.specialize import specialize


class Evaluator:
    """A filter for one architecture.

    ``constant`` maps each of ``nrs`` whose result is independent of ip and args to
    that result; :meth:`filter_for` is the compiled filter of any other number.
    Construction raises :class:`~callgate.bpf.verifier.VerifierError` for a program
    the kernel refuses.
    """

    __slots__ = ("_filters", "arch", "constant", "program")

    def __init__(self, program: Sequence[Insn], arch: int, nrs: Iterable[int] = ()):
        self.program = tuple(program)
        self.arch = arch
        self.constant: dict[int, int] = constant_actions(self.program, arch, nrs)
        self._filters: dict[int, CompiledFilter] = {}

    def filter_for(self, nr: int) -> CompiledFilter:
        """The compiled filter for calls with this ``nr``: ``f(nr, arch, ip, a0..a5)``."""
        nr &= U32_MASK
        compiled = self._filters.get(nr)
        if compiled is None:
            compiled = self._filters[nr] = compile_program(specialize(self.program, nr,
                                                                      self.arch))
        return compiled

    def decide(self, nr: int, ip: int, args: Sequence[int]) -> int:
        """The filter's u32 result for a call; ``args`` are six u64 values."""
        nr &= U32_MASK
        ret = self.constant.get(nr)
        if ret is None:
            ret = self.filter_for(nr)(nr, self.arch, ip, *args)
        return ret
