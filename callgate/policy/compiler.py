"""Policy section + arch → a seccomp cBPF program.

The program has three parts, each built by its own module:

1. the header: ``arch`` must be the filter's (else the mismatch action); on x86_64
   an x32 number is refused the same way, and on x32 a number without the x32 bit
   (:mod:`callgate.policy.reference` says exactly which);
2. dispatch on ``nr``: ranges of numbers with identical code, found by a balanced
   JGE tree (:mod:`callgate.policy.layout`);
3. per syscall, its rules in decision order (:mod:`callgate.policy.plan`), each
   rule a chain of exact 64-bit comparisons (:mod:`callgate.policy.argcmp`); the
   first rule whose checks all hold returns its action, else the default. A run of
   rules pinning one argument to different values is a binary search over the
   values instead of a chain (:mod:`callgate.policy.switch`).

Blocks are shared, jumps resolved and the 4096-instruction limit enforced by
:mod:`callgate.policy.program`; the result is checked by the verifier before it is
returned, so a compiler bug surfaces as an error, never as a wrong filter.
"""

from __future__ import annotations

from callgate.arch import X32_SYSCALL_BIT, Arch
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import OFF_ARCH, OFF_NR
from callgate.bpf.verifier import verify
from callgate.policy.argcmp import emit_check
from callgate.policy.layout import merge_ranges, search_tree
from callgate.policy.model import Layer, Policy, Section
from callgate.policy.plan import Branch, SectionPlan, plan_section
from callgate.policy.program import Node, PolicyCompileError, ProgramBuilder
from callgate.policy.reference import ENOSYS_ACTION, SKIPPED_NR, X32Rule
from callgate.policy.switch import Switch, emit_switch, split_runs

__all__ = ["PolicyCompileError", "compile_plan", "compile_policy", "compile_section"]


def _syscall_code(b: ProgramBuilder, branches: tuple[Branch, ...], default: Node) -> Node:
    """First-match chain: each branch's checks ANDed, falling through to the next branch;
    a run pinning one argument to many values is one switch (whose cases recurse here)."""
    otherwise = default
    for part in reversed(split_runs(branches)):
        if isinstance(part, Switch):
            otherwise = emit_switch(b, part, lambda bs, miss: _syscall_code(b, bs, miss),
                                    otherwise)
            continue
        node = b.ret(part.action)
        for check in reversed(part.checks):
            node = emit_check(b, check, node, otherwise)
        otherwise = node
    return otherwise


def compile_plan(plan: SectionPlan) -> list[Insn]:
    b = ProgramBuilder()
    default = b.ret(plan.default)
    mismatch = b.ret(plan.mismatch)
    codes = {nr: _syscall_code(b, branches, default) for nr, branches in plan.syscalls.items()}
    tail = None
    if plan.enosys_above is not None:
        tail = (plan.enosys_above + 1, b.ret(ENOSYS_ACTION))
    ranges = merge_ranges(codes, default, tail)
    dispatch = search_tree(b, ranges, plan.arch.numbers.values())
    if plan.x32 is X32Rule.REJECT:
        dispatch = b.jge(X32_SYSCALL_BIT, b.jeq(SKIPPED_NR, dispatch, mismatch), dispatch)
    elif plan.x32 is X32Rule.REQUIRE:
        dispatch = b.jge(X32_SYSCALL_BIT, dispatch, mismatch)
    root = b.load(OFF_ARCH, b.jeq(plan.audit_arch, b.load(OFF_NR, dispatch), mismatch))
    program = b.build(root)
    verify(program)
    return program


def compile_section(
    section: Section, arch: Arch, *, mismatch_action: int | None = None
) -> list[Insn]:
    """Compile one section for ``arch``; ``mismatch_action`` overrides the section's own."""
    return compile_plan(plan_section(section, arch, mismatch=mismatch_action))


def section_for(policy: Policy, layer: Layer | str, arch: Arch) -> Section:
    """The section of ``policy`` for ``layer``, checked against the kind of ``arch``."""
    layer = Layer(layer)
    if (layer is Layer.GATES) != arch.is_gate_layer:
        wanted = "the callgate gate arch" if layer is Layer.GATES else "a kernel arch"
        raise PolicyCompileError(f"the {layer} layer compiles for {wanted}, not {arch.name}")
    section = policy.section(layer)
    if section is None:
        raise PolicyCompileError(f"{policy.source} has no [{layer}] section to compile")
    return section


def compile_policy(policy: Policy, layer: Layer | str, arch: Arch) -> list[Insn]:
    """Compile ``policy``'s section for ``layer`` (``gates`` or ``kernel``) on ``arch``."""
    return compile_section(section_for(policy, layer, arch), arch)
