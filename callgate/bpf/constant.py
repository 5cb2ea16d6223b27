"""Constant-action analysis: which syscall numbers get one fixed result, whatever the args.

The kernel's ``seccomp_cache_prepare_bitmap`` asks, per syscall number, "does
this filter always ALLOW it?" and then skips the filter for those numbers. This
module asks the same for *every* result value, so a gate can answer those numbers
with one dictionary lookup.

It is an abstract interpretation over the program's DAG. ``nr`` and ``arch`` are
known; the instruction pointer and the args are unknown. Each register and
scratch word is either a known u32 or unknown; where paths meet, a value stays
known only if it is the same on every incoming path. A jump whose outcome is
unknown explores both branches. The result is constant only if every reachable
return gives the same known value (``RET A`` with an unknown A is not constant,
and an unknown division by X may return 0). The analysis can miss constants
(it forgets how unknown values relate), but it never claims a false one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn
from callgate.bpf.interpreter import alu
from callgate.bpf.seccomp_data import OFF_ARCH, OFF_NR, SECCOMP_DATA_SIZE, U32_MASK
from callgate.bpf.verifier import verify

Value = int | None  # None: unknown
Memory = tuple[Value, ...]
State = tuple[Value, Value, Memory]


def _join(old: State | None, new: State) -> State:
    if old is None or old == new:
        return new
    a = old[0] if old[0] == new[0] else None
    x = old[1] if old[1] == new[1] else None
    mem = tuple(o if o == n else None for o, n in zip(old[2], new[2], strict=True))
    return (a, x, mem)


def _alu(operation: int, a: Value, operand: Value) -> Value:
    """Abstract ALU: exact when both inputs are known; ``& 0`` and ``* 0`` are 0 regardless."""
    if operand == 0 and operation in (op.BPF_AND, op.BPF_MUL):
        return 0
    if a is None or operand is None:
        return None
    return alu(operation, a, operand)


def _branch(operation: int, a: Value, operand: Value) -> bool | None:
    """The jump's outcome if it is decided, else None."""
    if a is None or operand is None:
        if operation == op.BPF_JSET and (a == 0 or operand == 0):
            return False
        return None
    if operation == op.BPF_JEQ:
        return a == operand
    if operation == op.BPF_JGT:
        return a > operand
    if operation == op.BPF_JGE:
        return a >= operand
    return a & operand != 0  # BPF_JSET


def abstract_states(program: Sequence[Insn], arch: int, nr: int) -> list[State | None]:
    """What is known at the start of each instruction for ``(nr, arch)``; None if unreachable.

    A state is ``(A, X, mem)``, each value a u32 or None (unknown). ``program``
    must already be verified.
    """
    unknown_mem: Memory = (None,) * op.BPF_MEMWORDS
    states: list[State | None] = [None] * len(program)
    states[0] = (0, 0, unknown_mem)
    words = {OFF_NR: nr & U32_MASK, OFF_ARCH: arch & U32_MASK}

    def flow(target: int, state: State) -> None:
        states[target] = _join(states[target], state)

    for pc, insn in enumerate(program):
        state = states[pc]
        if state is None:
            continue
        a, x, mem = state
        code, k = insn.code, insn.k
        cls = op.bpf_class(code)
        if cls == op.BPF_RET:
            continue
        if cls == op.BPF_JMP:
            operation = op.bpf_op(code)
            if operation == op.BPF_JA:
                flow(pc + 1 + k, state)
                continue
            operand = x if op.bpf_src(code) == op.BPF_X else k
            taken = _branch(operation, a, operand)
            if taken is not False:
                if operation == op.BPF_JEQ:  # on the taken edge A equals the operand
                    known = a if a is not None else operand
                    x_after = known if op.bpf_src(code) == op.BPF_X else x
                    flow(pc + 1 + insn.jt, (known, x_after, mem))
                else:
                    flow(pc + 1 + insn.jt, state)
            if taken is not True:
                flow(pc + 1 + insn.jf, state)
            continue
        if cls in (op.BPF_LD, op.BPF_LDX):
            mode = op.bpf_mode(code)
            value: Value
            if mode == op.BPF_ABS:
                value = words.get(k)
            elif mode == op.BPF_LEN:
                value = SECCOMP_DATA_SIZE
            elif mode == op.BPF_MEM:
                value = mem[k]
            else:
                value = k
            if cls == op.BPF_LD:
                a = value
            else:
                x = value
        elif cls in (op.BPF_ST, op.BPF_STX):
            mem = (*mem[:k], a if cls == op.BPF_ST else x, *mem[k + 1 :])
        elif cls == op.BPF_MISC:
            if op.bpf_miscop(code) == op.BPF_TAX:
                x = a
            else:
                a = x
        elif op.bpf_op(code) == op.BPF_NEG:
            a = None if a is None else -a & U32_MASK
        else:
            operation = op.bpf_op(code)
            operand = x if op.bpf_src(code) == op.BPF_X else k
            if operation == op.BPF_DIV and operand == 0:
                continue  # DIV by X == 0: the filter ends here, returning 0
            a = _alu(operation, a, operand)
        flow(pc + 1, (a, x, mem))
    return states


def _possible_result(insn: Insn, state: State) -> Value | bool:
    """What a reachable instruction may return: a value, None (unknown), or False (it goes on)."""
    if insn.code == op.BPF_RET | op.BPF_K:
        return insn.k
    if insn.code == op.BPF_RET | op.BPF_A:
        return state[0]
    if insn.code == op.BPF_ALU | op.BPF_DIV | op.BPF_X and state[1] in (0, None):
        return 0  # X is (or may be) 0, and dividing by it makes the filter return 0
    return False


def constant_result(program: Sequence[Insn], arch: int, nr: int) -> int | None:
    """The one result ``program`` gives for ``(nr, arch)`` and any ip/args, or None.

    ``program`` must already be verified.
    """
    result: int | None = None
    for insn, state in zip(program, abstract_states(program, arch, nr), strict=True):
        if state is None:
            continue
        value = _possible_result(insn, state)
        if value is False:
            continue
        if value is None or (result is not None and value != result):
            return None
        result = value
    return result


def constant_actions(program: Sequence[Insn], arch: int, nrs: Iterable[int]) -> dict[int, int]:
    """``{nr: result}`` for each nr in ``nrs`` whose result does not depend on ip or args.

    Keys are the numbers as u32 (how a filter sees ``nr``). Numbers whose result
    can vary are left out.
    """
    verify(program)
    table: dict[int, int] = {}
    for nr in nrs:
        value = constant_result(program, arch, nr)
        if value is not None:
            table[nr & U32_MASK] = value
    return table
