"""libseccomp 2.5.4 (through pyseccomp) as an oracle for the compiler.

The differential test builds the same rules with libseccomp (binary tree,
``CTL_OPTIMIZE=2``) and runs both programs through callgate's interpreter on the
same calls: they must decide identically. It draws only sections libseccomp can
express with the same meaning (``strategies.oracle_sections``); the classes of
policy where libseccomp means something else are each pinned by a test below, so
the list in ``libseccomp_oracle``'s docstring and in docs/policy.md stays true.
Naming note: libseccomp's ``SCMP_ACT_KILL`` is ``KILL_THREAD`` (return value 0);
callgate's ``kill_thread`` is the same value, so it is no mismatch.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import require
from hypothesis import HealthCheck, given, reject, settings, strategies as st
from libseccomp_oracle import (
    ARCHES_32_BIT,
    AVAILABLE,
    NotExpressible,
    libseccomp_program,
    pyseccomp,
)
from strategies import calls, oracle_sections, sweep

from callgate.arch import get_arch, native_arch
from callgate.bpf import compile_program, interpret
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRAP,
)
from callgate.bpf.seccomp_data import U32_MASK, SeccompData
from callgate.policy.compiler import compile_section
from callgate.policy.model import ArgCheck, Op, Rule, Section
from callgate.policy.reference import decide

ARCH = native_arch()


@pytest.fixture(autouse=True)
def _libseccomp():
    require(AVAILABLE, "pyseccomp (libseccomp)")
    if pyseccomp.system_arch() != ARCH.audit_arch:
        pytest.skip("libseccomp's native arch differs from callgate's native arch table")


def _run(program, nr: int, *args: int) -> int:
    return interpret(program, SeccompData.make(nr, ARCH.audit_arch, list(args))).ret


def _narrow(section: Section) -> Section:
    """Constants cut to 32 bits: all a 32-bit arch's libseccomp compares (see the class test)."""

    def cut(check: ArgCheck) -> ArgCheck:
        value2 = None if check.value2 is None else check.value2 & U32_MASK
        return dataclasses.replace(check, value=check.value & U32_MASK, value2=value2)

    rules = tuple(dataclasses.replace(r, args=tuple(cut(c) for c in r.args)) for r in section.rules)
    return dataclasses.replace(section, rules=rules)


def _as_32_bit_abi(call: SeccompData) -> SeccompData:
    """A 32-bit ABI passes 32-bit args: the kernel's seccomp_data has zero high words."""
    return call._replace(args=tuple(a & U32_MASK for a in call.args))


@pytest.mark.parametrize("arch", [ARCH, get_arch("aarch64"), get_arch("x86")], ids=lambda a: a.name)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_same_decisions_as_libseccomp(arch, data):
    section = data.draw(oracle_sections(arch))
    is_32_bit = arch.name in ARCHES_32_BIT
    if is_32_bit:
        section = _narrow(section)
    ours = compile_section(section, arch)
    try:
        theirs = libseccomp_program(section, arch)
    except NotExpressible:
        reject()
    ours_fast, theirs_fast = compile_program(ours), compile_program(theirs)
    drawn = data.draw(st.lists(calls(section, arch), min_size=1, max_size=20))
    for call in sweep(section, arch) + drawn:
        if is_32_bit:
            call = _as_32_bit_abi(call)
        values = (call.nr, call.arch, call.instruction_pointer, *call.args)
        assert ours_fast(*values) == theirs_fast(*values), call
    for call in drawn:
        call = _as_32_bit_abi(call) if is_32_bit else call
        assert interpret(ours, call).ret == interpret(theirs, call).ret, call


def test_x32_and_minus_one_handled_alike():
    """Both refuse x32 numbers with the bad-arch action and let nr == -1 reach the default."""
    section = Section(SECCOMP_RET_ERRNO | 1, (Rule(("getppid",), SECCOMP_RET_ALLOW),))
    ours, theirs = compile_section(section, ARCH), libseccomp_program(section, ARCH)
    for nr in (0x40000000, 0x40000027, 0xFFFFFFFE, 0xFFFFFFFF, ARCH.number("getppid")):
        expected = decide(section, ARCH, SeccompData.make(nr, ARCH.audit_arch))
        assert _run(ours, nr) == _run(theirs, nr) == expected
    assert _run(ours, 0xFFFFFFFF) == SECCOMP_RET_ERRNO | 1
    assert _run(ours, 0x40000000) == SECCOMP_RET_KILL_PROCESS


# libseccomp's name for x32 in its API; no kernel reports it, so it is just a wrong arch.
LIBSECCOMP_X32_TOKEN = 0x4000003E


@pytest.mark.parametrize("name", ["x32", "aarch64", "x86"])
def test_other_arches_alike(name):
    """libseccomp's header for other arches (x32: x86_64's value plus the x32 bit) is ours."""
    arch = get_arch(name)
    section = Section(SECCOMP_RET_ERRNO | 1, (Rule(("read", "getppid"), SECCOMP_RET_ALLOW),))
    ours, theirs = compile_section(section, arch), libseccomp_program(section, arch)
    audits = {arch.audit_arch, ARCH.audit_arch, LIBSECCOMP_X32_TOKEN}
    for nr in {0, 1, 0x40000000, 0x40000001, 0xFFFFFFFF, *arch.numbers.values()}:
        for audit in audits:
            call = SeccompData.make(nr, audit)
            assert (
                interpret(ours, call).ret
                == interpret(theirs, call).ret
                == decide(section, arch, call)
            ), (hex(nr), hex(audit))


def _libseccomp_filter(default: int, *rules: tuple) -> list:
    """A raw libseccomp filter, for the classes our translation refuses to build."""
    return _libseccomp_filter_for(ARCH, default, *rules)


def _libseccomp_filter_for(arch, default: int, *rules: tuple) -> list:
    import tempfile

    from callgate.bpf.insn import unpack

    flt = pyseccomp.SyscallFilter(default)
    token = getattr(pyseccomp.Arch, arch.name.upper())
    if not flt.exist_arch(token):
        flt.add_arch(token)
        flt.remove_arch(pyseccomp.Arch.NATIVE)
    flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    for action, name, *args in rules:
        flt.add_rule(action, name, *args)
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return unpack(out.read())


def test_class_unconditional_rule_overrides_conditional_ones():
    """libseccomp: ``allow close`` swallows ``errno(2) close(3)``; callgate: the stronger wins."""
    theirs = _libseccomp_filter(
        SECCOMP_RET_KILL_PROCESS,
        (SECCOMP_RET_ERRNO | 2, "close", pyseccomp.Arg(0, pyseccomp.EQ, 3)),
        (SECCOMP_RET_ALLOW, "close"),
    )
    section = Section(
        SECCOMP_RET_KILL_PROCESS,
        (
            Rule(("close",), SECCOMP_RET_ERRNO | 2, (ArgCheck(0, Op.EQ, 3),)),
            Rule(("close",), SECCOMP_RET_ALLOW),
        ),
    )
    close = ARCH.number("close")
    assert _run(theirs, close, 3) == SECCOMP_RET_ALLOW
    assert _run(compile_section(section, ARCH), close, 3) == SECCOMP_RET_ERRNO | 2
    with pytest.raises(NotExpressible):
        libseccomp_program(section, ARCH)


def test_class_rules_on_different_args_follow_libseccomp_arg_order():
    """libseccomp tests a1's rule before a0's: read(5, 7) gets ERRNO(1), not the KILL."""
    theirs = _libseccomp_filter(
        SECCOMP_RET_ALLOW,
        (SECCOMP_RET_KILL_THREAD, "read", pyseccomp.Arg(0, pyseccomp.EQ, 5)),
        (SECCOMP_RET_ERRNO | 1, "read", pyseccomp.Arg(1, pyseccomp.EQ, 7)),
    )
    section = Section(
        SECCOMP_RET_ALLOW,
        (
            Rule(("read",), SECCOMP_RET_KILL_THREAD, (ArgCheck(0, Op.EQ, 5),)),
            Rule(("read",), SECCOMP_RET_ERRNO | 1, (ArgCheck(1, Op.EQ, 7),)),
        ),
    )
    read = ARCH.number("read")
    assert _run(theirs, read, 5, 7) == SECCOMP_RET_ERRNO | 1
    assert _run(compile_section(section, ARCH), read, 5, 7) == SECCOMP_RET_KILL_THREAD


def test_class_rule_extending_another_with_other_action():
    """Broader rule first: the narrower one is absorbed; narrower first: EEXIST."""
    broad = (SECCOMP_RET_ALLOW, "read", pyseccomp.Arg(0, pyseccomp.EQ, 5))
    narrow = (
        SECCOMP_RET_ERRNO | 1,
        "read",
        pyseccomp.Arg(0, pyseccomp.EQ, 5),
        pyseccomp.Arg(1, pyseccomp.EQ, 7),
    )
    theirs = _libseccomp_filter(SECCOMP_RET_KILL_PROCESS, broad, narrow)
    section = Section(
        SECCOMP_RET_KILL_PROCESS,
        (
            Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, 5),)),
            Rule(("read",), SECCOMP_RET_ERRNO | 1, (ArgCheck(0, Op.EQ, 5), ArgCheck(1, Op.EQ, 7))),
        ),
    )
    read = ARCH.number("read")
    assert _run(theirs, read, 5, 7) == SECCOMP_RET_ALLOW
    assert _run(compile_section(section, ARCH), read, 5, 7) == SECCOMP_RET_ERRNO | 1
    with pytest.raises(FileExistsError):
        _libseccomp_filter(SECCOMP_RET_KILL_PROCESS, narrow, broad)


def test_class_or_of_ordering_checks_on_one_arg():
    """libseccomp 2.5.4 loses ``a0 < 2**32`` next to ``a0 < 5``: read(5) is not killed."""
    theirs = _libseccomp_filter(
        SECCOMP_RET_ALLOW,
        (SECCOMP_RET_KILL_PROCESS, "read", pyseccomp.Arg(0, pyseccomp.LT, 5)),
        (SECCOMP_RET_KILL_PROCESS, "read", pyseccomp.Arg(0, pyseccomp.LT, 1 << 32)),
    )
    section = Section(
        SECCOMP_RET_ALLOW,
        (
            Rule(("read",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(0, Op.LT, 5),)),
            Rule(("read",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(0, Op.LT, 1 << 32),)),
        ),
    )
    read = ARCH.number("read")
    assert _run(theirs, read, 5) == SECCOMP_RET_ALLOW
    assert _run(compile_section(section, ARCH), read, 5) == SECCOMP_RET_KILL_PROCESS
    with pytest.raises(NotExpressible):
        libseccomp_program(section, ARCH)


def test_class_overlapping_checks_on_one_arg_in_two_rules():
    """a0 == 0 OR (a0 != 1 AND a1 == 0): libseccomp lets read(0, 1) through."""
    theirs = _libseccomp_filter(
        SECCOMP_RET_ALLOW,
        (SECCOMP_RET_KILL_PROCESS, "read", pyseccomp.Arg(0, pyseccomp.EQ, 0)),
        (
            SECCOMP_RET_KILL_PROCESS,
            "read",
            pyseccomp.Arg(0, pyseccomp.NE, 1),
            pyseccomp.Arg(1, pyseccomp.EQ, 0),
        ),
    )
    section = Section(
        SECCOMP_RET_ALLOW,
        (
            Rule(("read",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(0, Op.EQ, 0),)),
            Rule(
                ("read",), SECCOMP_RET_KILL_PROCESS, (ArgCheck(0, Op.NE, 1), ArgCheck(1, Op.EQ, 0))
            ),
        ),
    )
    read = ARCH.number("read")
    assert _run(theirs, read, 0, 1) == SECCOMP_RET_ALLOW
    assert _run(compile_section(section, ARCH), read, 0, 1) == SECCOMP_RET_KILL_PROCESS
    with pytest.raises(NotExpressible):
        libseccomp_program(section, ARCH)


def test_class_eq_blocks_shared_across_syscalls_drop_a_further_check():
    """open a0 in {0, 1}; close a0 == 0 OR (a0 == 1 AND a1 == 1), all LOG: libseccomp
    logs close(1, 0), whose a1 fails the second rule (close's rules alone work)."""
    log, arg, eq = SECCOMP_RET_LOG, pyseccomp.Arg, pyseccomp.EQ
    both = (
        (log, "open", arg(0, eq, 0)),
        (log, "open", arg(0, eq, 1)),
        (log, "close", arg(0, eq, 0)),
        (log, "close", arg(0, eq, 1), arg(1, eq, 1)),
    )
    close = ARCH.number("close")
    assert _run(_libseccomp_filter(SECCOMP_RET_ALLOW, *both), close, 1, 0) == log
    assert _run(_libseccomp_filter(SECCOMP_RET_ALLOW, *both[2:]), close, 1, 0) == \
        SECCOMP_RET_ALLOW
    rules = (
        Rule(("open",), log, (ArgCheck(0, Op.EQ, 0),)),
        Rule(("open",), log, (ArgCheck(0, Op.EQ, 1),)),
        Rule(("close",), log, (ArgCheck(0, Op.EQ, 0),)),
        Rule(("close",), log, (ArgCheck(0, Op.EQ, 1), ArgCheck(1, Op.EQ, 1))),
    )
    section = Section(SECCOMP_RET_ALLOW, rules)
    assert _run(compile_section(section, ARCH), close, 1, 0) == SECCOMP_RET_ALLOW
    with pytest.raises(NotExpressible):
        libseccomp_program(section, ARCH)


def test_class_rule_with_default_action_is_refused():
    with pytest.raises(PermissionError):
        _libseccomp_filter(
            SECCOMP_RET_LOG, (SECCOMP_RET_LOG, "read", pyseccomp.Arg(0, pyseccomp.EQ, 5))
        )


def test_class_two_checks_on_one_arg_are_refused():
    with pytest.raises(OSError):
        _libseccomp_filter(
            SECCOMP_RET_KILL_PROCESS,
            (
                SECCOMP_RET_ALLOW,
                "read",
                pyseccomp.Arg(0, pyseccomp.GT, 5),
                pyseccomp.Arg(0, pyseccomp.LT, 9),
            ),
        )


def test_class_masked_eq_datum_outside_mask():
    """libseccomp compares with ``datum & mask``; ``arg & 0xff == 0x134`` never holds."""
    theirs = _libseccomp_filter(
        SECCOMP_RET_KILL_PROCESS,
        (SECCOMP_RET_ALLOW, "read", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, 0xFF, 0x134)),
    )
    section = Section(
        SECCOMP_RET_KILL_PROCESS,
        (Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.MASKED_EQ, 0xFF, 0x134),)),),
    )
    read = ARCH.number("read")
    assert _run(theirs, read, 0x34) == SECCOMP_RET_ALLOW
    assert _run(compile_section(section, ARCH), read, 0x34) == SECCOMP_RET_KILL_PROCESS


def test_class_sign_extended_int_argument():
    """A 32-bit ``int`` -1 reaches the filter sign-extended; only width 32 matches it."""
    theirs = _libseccomp_filter(
        SECCOMP_RET_ALLOW,
        (SECCOMP_RET_TRAP, "close", pyseccomp.Arg(0, pyseccomp.EQ, 0xFFFFFFFF)),
    )
    section = Section(
        SECCOMP_RET_ALLOW,
        (Rule(("close",), SECCOMP_RET_TRAP, (ArgCheck(0, Op.EQ, 0xFFFFFFFF, width=32),)),),
    )
    close, minus_one = ARCH.number("close"), 0xFFFFFFFFFFFFFFFF
    assert _run(theirs, close, minus_one) == SECCOMP_RET_ALLOW
    assert _run(compile_section(section, ARCH), close, minus_one) == SECCOMP_RET_TRAP


def test_class_32_bit_arch_compares_low_words_only():
    """On x86, libseccomp cuts a datum to 32 bits; callgate compares what the policy says."""
    x86 = get_arch("x86")
    section = Section(
        SECCOMP_RET_ERRNO | 1,
        (Rule(("read",), SECCOMP_RET_ALLOW, (ArgCheck(0, Op.EQ, (1 << 32) | 5),)),),
    )
    with pytest.raises(NotExpressible):
        libseccomp_program(section, x86)
    theirs = _libseccomp_filter_for(
        x86,
        SECCOMP_RET_ERRNO | 1,
        (SECCOMP_RET_ALLOW, "read", pyseccomp.Arg(0, pyseccomp.EQ, (1 << 32) | 5)),
    )
    call = SeccompData.make(x86.number("read"), x86.audit_arch, [5])
    assert interpret(theirs, call).ret == SECCOMP_RET_ALLOW
    assert interpret(compile_section(section, x86), call).ret == SECCOMP_RET_ERRNO | 1


def test_class_x86_socketcall_multiplexing():
    """On x86, libseccomp's rule for socket also allows socketcall(SYS_SOCKET, …)."""
    x86 = get_arch("x86")
    section = Section(SECCOMP_RET_ERRNO | 1, (Rule(("socket",), SECCOMP_RET_ALLOW),))
    with pytest.raises(NotExpressible):
        libseccomp_program(section, x86)
    theirs = _libseccomp_filter_for(x86, SECCOMP_RET_ERRNO | 1, (SECCOMP_RET_ALLOW, "socket"))
    socketcall = SeccompData.make(x86.number("socketcall"), x86.audit_arch, [1])
    assert interpret(theirs, socketcall).ret == SECCOMP_RET_ALLOW
    assert interpret(compile_section(section, x86), socketcall).ret == SECCOMP_RET_ERRNO | 1
