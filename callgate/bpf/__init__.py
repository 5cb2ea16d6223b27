"""Classic BPF as seccomp runs it: instructions, ``seccomp_data``, actions, and the engine.

The engine, re-exported here: :func:`verify` (the kernel's admission rules),
:func:`interpret` (the reference interpreter), :func:`compile_program` (the fast
evaluator), :func:`constant_actions` (results that do not depend on the args),
and :class:`Evaluator`, which combines the last two for the runtime.
"""

from callgate.bpf.compiled import compile_program
from callgate.bpf.constant import constant_actions
from callgate.bpf.evaluator import Evaluator
from callgate.bpf.insn import Insn, pack, unpack
from callgate.bpf.interpreter import Execution, interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.bpf.verifier import VerifierError, verify

__all__ = [
    "Evaluator",
    "Execution",
    "Insn",
    "SeccompData",
    "VerifierError",
    "compile_program",
    "constant_actions",
    "interpret",
    "pack",
    "unpack",
    "verify",
]
