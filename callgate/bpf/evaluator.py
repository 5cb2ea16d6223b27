"""The runtime's filter: verified once, constant results in a table, the rest compiled.

A gate asks the same filter millions of times. :class:`Evaluator` pays for
verification, the constant-action analysis and compilation once, then answers
each call with one dictionary lookup or one call of the compiled function.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from callgate.bpf.compiled import CompiledFilter, compile_program
from callgate.bpf.constant import constant_actions
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import U32_MASK


class Evaluator:
    """A filter for one architecture.

    ``constant`` maps each of ``nrs`` whose result is independent of ip and
    args to that result; ``function`` computes any other result from
    ``(nr, arch, ip, a0..a5)``. Construction raises
    :class:`~callgate.bpf.verifier.VerifierError` for a program the kernel refuses.
    """

    __slots__ = ("arch", "constant", "function", "program")

    def __init__(self, program: Sequence[Insn], arch: int, nrs: Iterable[int] = ()):
        self.program = tuple(program)
        self.arch = arch
        self.function: CompiledFilter = compile_program(self.program)
        self.constant: dict[int, int] = constant_actions(self.program, arch, nrs)

    def decide(self, nr: int, ip: int, args: Sequence[int]) -> int:
        """The filter's u32 result for a call; ``args`` are six u64 values."""
        nr &= U32_MASK
        ret = self.constant.get(nr)
        if ret is None:
            ret = self.function(nr, self.arch, ip, *args)
        return ret
