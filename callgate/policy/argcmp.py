"""Exact 64-bit argument comparisons from a machine that compares 32 bits at a time.

A classic-BPF load reads one 32-bit word, so ``args[i] OP value`` is split into
the high and low words of both sides:

* ``eq``: both halves equal; ``ne`` is its negation (branches swapped);
* ``gt``/``ge``: the high words decide unless they are equal, then the low words
  do (unsigned); ``lt``/``le`` are the negations of ``ge``/``gt``;
* ``masked_eq`` (``arg & mask == datum``): each half masked and compared. A datum
  with bits outside the mask can never match, and the check becomes "false" — not
  silently ``datum & mask``, as libseccomp does;
* ``width = 32`` compares the low words only, whatever the high word holds.

Everything is emitted through :class:`ProgramBuilder`, whose folding turns checks
fixed by their constants (``ge 0``, ``gt 2**64-1``, a zero mask) into plain jumps.
"""

from __future__ import annotations

from callgate.bpf.seccomp_data import U32_MASK, arg_hi, arg_lo
from callgate.policy.model import ArgCheck, Op
from callgate.policy.program import Node, PolicyCompileError, ProgramBuilder

MAX_ARG_INDEX = 5
WIDTHS = (32, 64)

# ``lt``/``le``/``ne`` are emitted as the negation of the op on the right.
_NEGATED = {Op.NE: Op.EQ, Op.LT: Op.GE, Op.LE: Op.GT}


def check_arg(check: ArgCheck, where: str) -> None:
    """Raise :class:`PolicyCompileError` unless ``check`` fits the seccomp_data it tests."""
    if not 0 <= check.index <= MAX_ARG_INDEX:
        raise PolicyCompileError(f"{where}: arg index {check.index} is not 0..{MAX_ARG_INDEX}")
    if check.width not in WIDTHS:
        raise PolicyCompileError(f"{where}: width {check.width} is not 32 or 64")
    try:
        Op(check.op)
    except ValueError:
        ops = ", ".join(o.value for o in Op)
        raise PolicyCompileError(f"{where}: op {check.op!r} is not one of {ops}") from None
    limit = (1 << check.width) - 1
    operands = [("value", check.value)]
    if check.op is Op.MASKED_EQ:
        if check.value2 is None:
            raise PolicyCompileError(f"{where}: masked_eq needs value2 (the datum)")
        operands.append(("value2", check.value2))
    for label, number in operands:
        if not isinstance(number, int) or not 0 <= number <= limit:
            raise PolicyCompileError(
                f"{where}: {label} {number!r} does not fit an unsigned {check.width}-bit "
                f"argument (0..{limit:#x})"
            )


def emit_check(b: ProgramBuilder, check: ArgCheck, t: Node, f: Node) -> Node:
    """Code that goes to ``t`` when ``check`` holds for the call and to ``f`` otherwise.

    ``check`` must have passed :func:`check_arg`.
    """
    op = Op(check.op)
    if op in _NEGATED:
        op, t, f = _NEGATED[op], f, t
    lo = arg_lo(check.index)
    if check.width == 32:
        return _word(b, op, lo, check.value, check.value2, t, f)
    hi = arg_hi(check.index)
    v_hi, v_lo = check.value >> 32, check.value & U32_MASK
    if op is Op.EQ:
        return _word(b, Op.EQ, hi, v_hi, None, _word(b, Op.EQ, lo, v_lo, None, t, f), f)
    if op is Op.MASKED_EQ:
        assert check.value2 is not None
        d_hi, d_lo = check.value2 >> 32, check.value2 & U32_MASK
        low = _word(b, op, lo, v_lo, d_lo, t, f)
        return _word(b, op, hi, v_hi, d_hi, low, f)
    # gt / ge: decided by the high words unless they are equal, then by the low words.
    low = _word(b, op, lo, v_lo, None, t, f)
    if low == t:  # the low words always pass: arg >= value_hi << 32
        return b.load(hi, b.jge(v_hi, t, f))
    if low == f:  # the low words never pass: arg > (value_hi << 32 | 0xffffffff)
        return b.load(hi, b.jgt(v_hi, t, f))
    return b.load(hi, b.jgt(v_hi, t, b.jeq(v_hi, low, f)))


def _word(
    b: ProgramBuilder, op: Op, offset: int, value: int, datum: int | None, t: Node, f: Node
) -> Node:
    """One 32-bit comparison of the word at ``offset`` (op is eq, gt, ge or masked_eq)."""
    if op is Op.EQ:
        return b.load(offset, b.jeq(value, t, f))
    if op is Op.GT:
        return b.load(offset, b.jgt(value, t, f))
    if op is Op.GE:
        return b.load(offset, b.jge(value, t, f))
    assert op is Op.MASKED_EQ and datum is not None
    if datum & ~value:  # bits the mask clears can never equal set datum bits
        return f
    if datum == 0:  # nothing under the mask may be set
        return b.load(offset, b.jset(value, f, t))
    if datum == value and value & (value - 1) == 0:  # one bit, which must be set
        return b.load(offset, b.jset(value, t, f))
    return b.load(offset, b.and_k(value, b.jeq(datum, t, f)))
