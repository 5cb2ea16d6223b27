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
* one arg tested in two rules of one syscall, unless both tests are plain ``eq``
  (which cannot both hold): libseccomp 2.5.4 nests the rules under that arg and,
  when a later check of one rule fails, jumps to the default instead of trying the
  other rule — even with one action. ``a0 < 5`` OR ``a0 < 2**32`` misses
  ``a0 = 5``; ``a0 == 0`` OR (``a0 != 1`` AND ``a1 == 0``) misses ``read(0, 1)``;
* plain ``eq`` on one arg in two rules of a syscall, one of them testing more args:
  alone it works, but beside another syscall with an ``eq`` block of the same shape
  libseccomp 2.5.4 shares the block and drops the further check: with ``open``
  a0 == 0 or 1 and ``close`` a0 == 0 OR (a0 == 1 AND a1 == 1), all one action,
  ``close(1, 0)`` takes the action;
* a rule whose action is the default is refused (EACCES);
* two checks on the same arg in one rule are refused (EINVAL);
* ``masked_eq`` with datum bits outside the mask: libseccomp compares against
  ``datum & mask`` (can match); callgate's meaning (``arg & mask == datum``) never
  matches;
* ``width = 32`` ordering checks: libseccomp compares all 64 bits; only ``eq`` and
  ``masked_eq`` have a 64-bit spelling (a low-word mask);
* on 32-bit arches (x86, arm), libseccomp compares only the low words and cuts
  every datum to 32 bits (``eq 2**32 | 5`` matches 5); and on x86 a rule for a
  socket or SysV IPC syscall also matches its ``socketcall``/``ipc`` multiplexed
  form;
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


ARCHES_32_BIT = ("x86", "arm")
# Syscalls libseccomp also filters in their multiplexed form (socketcall / ipc) on x86.
_MULTIPLEXED = frozenset(
    "socket bind connect listen accept getsockname getpeername socketpair send recv sendto "
    "recvfrom shutdown setsockopt getsockopt sendmsg recvmsg accept4 recvmmsg sendmmsg "
    "semop semget semctl semtimedop msgsnd msgrcv msgget msgctl shmat shmdt shmget shmctl".split()
)


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
    """libseccomp's filter for ``section`` on ``arch`` (alone), as instructions."""
    if section.enosys_above is not None:
        raise NotExpressible("enosys_above is runc's stub, not a libseccomp rule")
    token = getattr(pyseccomp.Arch, arch.name.upper(), None)
    if token is None:
        raise NotExpressible(f"libseccomp has no arch {arch.name}")
    if arch.name == "x86" and any(n in _MULTIPLEXED for r in section.rules for n in r.names):
        raise NotExpressible("x86 socketcall/ipc multiplexing adds rules")
    if arch.name in ARCHES_32_BIT and any(
        c.value > U32_MASK or (c.value2 or 0) > U32_MASK for r in section.rules for c in r.args
    ):
        raise NotExpressible("a 32-bit arch's libseccomp cuts constants to 32 bits")
    actions_by_nr: dict[int, set[int]] = {}
    # nr -> arg index -> the checks rules make on it (one entry per rule)
    tested: dict[int, dict[int, list[ArgCheck]]] = {}
    for rule in section.rules:
        if action_of(rule.action) == SECCOMP_RET_TRAP and data_of(rule.action):
            raise NotExpressible("libseccomp's TRAP has no data")
        indices = [c.index for c in rule.args]
        if len(set(indices)) != len(indices):
            raise NotExpressible("two checks on one arg in one rule")
        for nr in {arch.numbers[name] for name in rule.names if name in arch.numbers}:
            actions_by_nr.setdefault(nr, set()).add(rule.action)
            for check in rule.args:
                tested.setdefault(nr, {}).setdefault(check.index, []).append(check)
    if any(len(acts) > 1 for acts in actions_by_nr.values()):
        raise NotExpressible("one syscall with two actions")
    for by_arg in tested.values():
        for checks in by_arg.values():
            plain_eq = all(Op(c.op) is Op.EQ and c.width == 64 for c in checks)
            if len(checks) > 1 and not plain_eq:
                raise NotExpressible("overlapping checks on one arg in two rules of a syscall")
    for nr, by_arg in tested.items():
        shapes = {tuple(sorted(c.index for c in rule.args)) for rule in section.rules
                  if nr in {arch.numbers.get(name) for name in rule.names}}
        if len(shapes) > 1 and any(len(checks) > 1 for checks in by_arg.values()):
            raise NotExpressible("eq on one arg in two rules of a syscall, one testing more")
    flt = pyseccomp.SyscallFilter(section.default)
    if not flt.exist_arch(token):
        flt.add_arch(token)
        flt.remove_arch(pyseccomp.Arch.NATIVE)
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
                flt.add_rule(rule.action, name, *args)  # a number would mean the native one
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
