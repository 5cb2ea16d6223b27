"""Build the libseccomp (pyseccomp) filter for a policy section, for differential testing.

Only sections libseccomp can express with the *same meaning* translate; anything
else raises :class:`NotExpressible` with the reason, so the oracle test can count
what it skipped. What libseccomp cannot say (or says differently), found by
probing libseccomp 2.5.4 and pinned in ``test_libseccomp_oracle.py``:

* two actions for one syscall: libseccomp does not pick the most restrictive. An
  unconditional rule replaces every conditional one whatever their actions; a rule
  whose checks extend another's is absorbed by it (or, added first, makes the
  broader one fail with EEXIST); rules on different
  args are tested in libseccomp's own arg order, first match wins;
* ordering checks (lt/le/gt/ge) on the same arg in two rules of one syscall, with
  constants whose high words differ: libseccomp 2.5.4 can lose one of them, even
  with one action (``a0 < 5`` OR ``a0 < 2**32`` denies ``a0 = 5``);
* a rule whose action is the default is refused (EACCES);
* two checks on the same arg in one rule are refused (EINVAL);
* ``masked_eq`` with datum bits outside the mask: libseccomp compares against
  ``datum & mask`` (can match); callgate's meaning (``arg & mask == datum``) never
  matches;
* ``width = 32`` ordering checks: libseccomp compares all 64 bits; only ``eq`` and
  ``masked_eq`` have a 64-bit spelling (a low-word mask);
* TRAP with data, ``ERRNO(4095)`` (the kernel's MAX_ERRNO; libseccomp refuses it
  with EINVAL), and ``enosys_above`` (runc's stub, outside libseccomp).
"""

from __future__ import annotations

import contextlib
import tempfile

from callgate.arch import Arch
from callgate.bpf.actions import SECCOMP_RET_TRAP, action_of, data_of
from callgate.bpf.insn import Insn, unpack
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import U32_MASK, SeccompData
from callgate.policy.model import ArgCheck, Op, Section
from callgate.policy.reference import mismatch_action

try:
    import pyseccomp
except ImportError:  # the tests using this call conftest.require
    pyseccomp = None

AVAILABLE = pyseccomp is not None


_ORDERING = (Op.LT, Op.LE, Op.GT, Op.GE)


class NotExpressible(Exception):
    """The section has no libseccomp filter with the same meaning."""


def _op(op: Op) -> int:
    return {
        Op.EQ: pyseccomp.EQ,
        Op.NE: pyseccomp.NE,
        Op.LT: pyseccomp.LT,
        Op.LE: pyseccomp.LE,
        Op.GT: pyseccomp.GT,
        Op.GE: pyseccomp.GE,
        Op.MASKED_EQ: pyseccomp.MASKED_EQ,
    }[op]


def _arg(check: ArgCheck) -> pyseccomp.Arg:
    op = Op(check.op)
    if op is Op.MASKED_EQ:
        assert check.value2 is not None
        if check.value2 & ~check.value:
            raise NotExpressible("masked_eq datum has bits outside the mask")
        return pyseccomp.Arg(check.index, pyseccomp.MASKED_EQ, check.value, check.value2)
    if check.width == 32:
        if op is not Op.EQ:
            raise NotExpressible(f"width-32 {op} compares 64 bits in libseccomp")
        return pyseccomp.Arg(check.index, pyseccomp.MASKED_EQ, U32_MASK, check.value)
    return pyseccomp.Arg(check.index, _op(op), check.value)


def libseccomp_program(section: Section, arch: Arch, *, optimize: int = 2) -> list[Insn]:
    """libseccomp's filter for ``section`` on the native ``arch``, as instructions."""
    if section.enosys_above is not None:
        raise NotExpressible("enosys_above is runc's stub, not a libseccomp rule")
    if pyseccomp.system_arch() != arch.audit_arch:
        raise NotExpressible(f"{arch.name} is not the native arch")
    actions_by_nr: dict[int, set[int]] = {}
    ordered_args: dict[int, list[int]] = {}  # nr -> arg indices with ordering checks, per rule
    for rule in section.rules:
        if action_of(rule.action) == SECCOMP_RET_TRAP and data_of(rule.action):
            raise NotExpressible("libseccomp's TRAP has no data")
        indices = [c.index for c in rule.args]
        if len(set(indices)) != len(indices):
            raise NotExpressible("two checks on one arg in one rule")
        ordering = {c.index for c in rule.args if Op(c.op) in _ORDERING}
        for nr in {arch.numbers[name] for name in rule.names if name in arch.numbers}:
            actions_by_nr.setdefault(nr, set()).add(rule.action)
            ordered_args.setdefault(nr, []).extend(ordering)
    if any(len(acts) > 1 for acts in actions_by_nr.values()):
        raise NotExpressible("one syscall with two actions")
    if any(len(set(ix)) != len(ix) for ix in ordered_args.values()):
        raise NotExpressible("ordering checks on one arg in two rules of one syscall")
    flt = pyseccomp.SyscallFilter(section.default)
    flt.set_attr(pyseccomp.Attr.ACT_BADARCH, mismatch_action(section))
    flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, optimize)
    for rule in section.rules:
        if rule.action == section.default:
            continue  # libseccomp refuses it; with one action per syscall it changes nothing
        args = [_arg(c) for c in rule.args]
        for name in dict.fromkeys(rule.names):
            if name not in arch.numbers:
                continue
            # FileExistsError: an equal or broader rule with this action is already there.
            with contextlib.suppress(FileExistsError):
                flt.add_rule(rule.action, arch.numbers[name], *args)
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return unpack(out.read())


def average_path_length(program: list[Insn], arch: Arch) -> float:
    """Instructions executed per call, averaged over every syscall number of ``arch``.

    Args are zero, so argument checks count as far as a zero argument takes them.
    """
    numbers = sorted(set(arch.numbers.values()))
    paths = [len(interpret(program, SeccompData.make(nr, arch.audit_arch)).path) for nr in numbers]
    return sum(paths) / len(paths)
