"""The filter plan: a policy and a gate table turned into what each gate evaluates.

Loading a plugin needs, per import, either a constant verdict (the filter's answer
does not depend on the arguments) or a compiled filter specialised for the gate's
number. :func:`plan_filter` builds that once per (policy, gate table) and caches it,
so a thousand plugins under one policy verify and compile it once. Both plugin
kinds use it: :class:`~callgate.runtime.Plugin` evaluates the plan, and
:class:`~callgate.isolation.IsolatedPlugin` sends its program to the worker.

A policy given as a path or text is parsed once per content: the file is read on
every load (a few microseconds), and the parse is cached by the text it holds, the
name it is reported under, its format and the app gates it may name. A file edited
between two plugins is therefore parsed again, whatever its timestamps say; one that
is unchanged costs a read and a dictionary lookup instead of a TOML parse.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

from callgate.arch import AUDIT_ARCH_CALLGATE, Arch
from callgate.arch.gate_numbers import WASI_MODULE
from callgate.bpf.actions import SECCOMP_RET_ALLOW
from callgate.bpf.compiled import CompiledFilter
from callgate.bpf.evaluator import Evaluator
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import interpret
from callgate.bpf.opcodes import BPF_K, BPF_RET
from callgate.bpf.seccomp_data import SeccompData
from callgate.bpf.verifier import VerifierError
from callgate.gates.errors import PolicyRefused
from callgate.gates.table import GateTable
from callgate.policy import Policy, load_policy_text, read_policy_source
from callgate.policy.compiler import compile_section
from callgate.policy.errors import PolicyError, Problem
from callgate.policy.loaded import LoadResult
from callgate.policy.model import NO_TIMING, GateTiming

# What a plugin accepts as its policy (see Plugin); None allows every gate of the table.
PolicySource = Policy | str | os.PathLike[str] | bytes | Sequence[Insn] | None
# A gate filter's input once resolved: a policy, or a program for the gate arch.
ResolvedPolicy = Policy | tuple[Insn, ...]

ALLOW_ALL: tuple[Insn, ...] = (Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW),)
FILTER_MODES = ("compiled", "interpreter")


def resolve_policy(source: PolicySource, table: GateTable) -> ResolvedPolicy:
    """A policy source as a :class:`Policy` or a program; files are read and checked here.

    App gates' names are valid in the policy's rules, as WASI's always are. A policy
    that cannot be used raises :class:`~callgate.gates.errors.PolicyRefused`, both a
    ``PolicyError`` and a ``PluginLoadError``.
    """
    if source is None:
        return ALLOW_ALL
    if isinstance(source, Policy):
        return source
    if isinstance(source, (str, bytes, os.PathLike)):
        app_names = tuple(sorted(spec.name for spec in table if spec.module != WASI_MODULE))
        try:
            text, name, fmt = read_policy_source(source)
            result = _parsed(text, name, fmt, app_names)
        except PolicyRefused:
            raise
        except PolicyError as exc:
            raise PolicyRefused(exc.problems) from None
        result.issue_warnings()
        return result.policy
    program = tuple(source) if isinstance(source, (list, tuple)) else None
    if program is None or not all(isinstance(insn, Insn) for insn in program):
        raise _refused(f"a plugin's policy must be a Policy, a policy file path, policy "
                       f"text, or a list of callgate.bpf.Insn (got {type(source).__name__}"
                       f"{'' if program is None else ' of other things'})")
    return program


@lru_cache(maxsize=64)
def _parsed(text: str, name: str, fmt: str, app_names: tuple[str, ...]) -> LoadResult:
    """Policy text parsed once (a failed parse raises and is not cached)."""
    return load_policy_text(text, source=name, gate_names=app_names, format=fmt)


def parse_cache_info() -> tuple[int, int]:
    """``(hits, misses)`` of the parsed-policy cache, for tests and ``callgate`` diagnostics."""
    info = _parsed.cache_info()
    return info.hits, info.misses


def gate_program(policy: ResolvedPolicy, arch: Arch) -> tuple[Insn, ...]:
    """The gate-arch program of ``policy`` for the gate numbering of ``arch``."""
    if isinstance(policy, tuple):
        return policy
    if policy.gates is None:
        raise _refused(f"policy {policy.source} has no [gates] section; a plugin needs one "
                       "to decide its gate calls", str(policy.source))
    return tuple(compile_section(policy.gates, arch))


def _refused(message: str, source: str = "<policy argument>") -> PolicyRefused:
    return PolicyRefused([Problem(source, "", message)])


class FilterPlan:
    """Per gate number: the constant verdict, or the filter to call; and the policy's
    :class:`~callgate.policy.model.GateTiming` (clock resolution, gate jitter), which
    the gates and dispatch apply (a bare program has none)."""

    __slots__ = ("evaluator", "mode", "timing")

    def __init__(self, evaluator: Evaluator, mode: str, timing: GateTiming = NO_TIMING) -> None:
        self.evaluator = evaluator
        self.mode = mode
        self.timing = timing

    @property
    def program(self) -> tuple[Insn, ...]:
        return self.evaluator.program

    def for_gate(self, number: int) -> tuple[int | None, CompiledFilter | None]:
        """``(constant verdict, None)`` or ``(None, filter)`` for calls to gate ``number``.

        In ``"interpreter"`` mode every gate gets the reference interpreter on a real
        ``seccomp_data`` record: no constant table, no generated code.
        """
        if self.mode == "interpreter":
            return None, _interpreted(self.evaluator.program)
        constant = self.evaluator.constant.get(number & 0xFFFFFFFF)
        if constant is not None:
            return constant, None
        return None, self.evaluator.filter_for(number)


def plan_filter(policy: PolicySource, table: GateTable, mode: str = "compiled") -> FilterPlan:
    """The cached :class:`FilterPlan` of ``policy`` for ``table``."""
    if mode not in FILTER_MODES:
        raise ValueError(f"filter_mode {mode!r}: use one of {', '.join(FILTER_MODES)}")
    resolved = resolve_policy(policy, table)
    timing = resolved.timing if isinstance(resolved, Policy) else NO_TIMING
    return FilterPlan(_evaluator(resolved, _table_key(table.arch)), mode, timing)


def _table_key(arch: Arch) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(arch.numbers.items()))


@lru_cache(maxsize=64)
def _evaluator(policy: ResolvedPolicy, table_key: tuple[tuple[str, int], ...]) -> Evaluator:
    """Verify, compile and constant-analyse once per (policy, gate numbering)."""
    numbers = dict(table_key)
    program = gate_program(policy, Arch("callgate", AUDIT_ARCH_CALLGATE, numbers))
    try:
        return Evaluator(program, AUDIT_ARCH_CALLGATE, numbers.values())
    except VerifierError as exc:
        raise _refused(f"the gate filter program is not one the kernel would load: {exc}"
                       ) from None


@lru_cache(maxsize=64)
def _interpreted(program: tuple[Insn, ...]) -> CompiledFilter:
    """The reference interpreter behind the compiled filter's signature."""
    def run(nr: int, arch: int, ip: int, *args: int) -> int:
        return interpret(program, SeccompData.make(nr, arch, args, ip)).ret
    return run
