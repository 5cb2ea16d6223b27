"""Hypothesis strategies for policy sections and the calls that probe them.

Sections draw names from a small pool, so rules collide on the same syscall (where
precedence matters), and include names the arch lacks and numbers next to each
other (where range merging matters). Calls are drawn *for* a section: numbers
its rules name and their neighbours, x32 and ``-1``, foreign arches, and args at
the boundaries of every constant the section compares against: v-1, v, v+1, 0,
2**32-1, 2**32, 2**64-1, sign-extended negatives, and v in the low word under a
random high word.
"""

from __future__ import annotations

from hypothesis import strategies as st

from callgate.arch import X32_SYSCALL_BIT, Arch
from callgate.bpf import actions
from callgate.bpf.actions import MAX_ERRNO
from callgate.bpf.seccomp_data import U32_MASK, U64_MASK, SeccompData
from callgate.policy.model import ArgCheck, Op, Rule, Section

# read..close and a few neighbours on x86_64, names x86_64 lacks (socketcall,
# _llseek are x86-only) and one no arch has.
NAME_POOL = (
    "read",
    "write",
    "open",
    "close",
    "stat",
    "fstat",
    "getppid",
    "uname",
    "clone",
    "socket",
    "socketcall",
    "_llseek",
    "no_such_syscall",
)
ERRNOS = (1, 2, 13, 38, MAX_ERRNO)


def actions_() -> st.SearchStrategy[int]:
    """Every kernel action; ERRNO/TRACE/TRAP with varied data so ties on action occur."""
    with_data = st.sampled_from(
        (actions.SECCOMP_RET_ERRNO, actions.SECCOMP_RET_TRACE, actions.SECCOMP_RET_TRAP)
    )
    return st.sampled_from(actions.PRECEDENCE) | st.builds(
        lambda action, data: action | data, with_data, st.sampled_from(ERRNOS)
    )


def _u(width: int) -> st.SearchStrategy[int]:
    limit = (1 << width) - 1
    edges = [0, 1, 0x7FFFFFFF, 0x80000000, U32_MASK]
    if width == 64:
        edges += [1 << 32, (1 << 32) + 1, 0x7FFFFFFFFFFFFFFF, 1 << 63, U64_MASK - 1, U64_MASK]
        edges += [0xFFFFFFFF00000000, 0x00000001FFFFFFFF]
    return st.sampled_from(edges) | st.integers(0, limit) | st.integers(0, 300)


@st.composite
def arg_checks(draw: st.DrawFn, widths: tuple[int, ...] = (32, 64)) -> ArgCheck:
    width = draw(st.sampled_from(widths))
    op = draw(st.sampled_from(list(Op)))
    value2 = None
    if op is Op.MASKED_EQ:
        one_bit = st.integers(0, width - 1).map(lambda bit: 1 << bit)
        value = draw(_u(width) | one_bit | one_bit.map(lambda m: m | 0xF0))
        # Datums inside the mask (all of it, none, some) can match; others never can.
        inside = st.sampled_from((value, 0)) | _u(width).map(lambda d: d & value)
        value2 = draw(inside | _u(width))
    else:
        value = draw(_u(width))
    return ArgCheck(draw(st.integers(0, 5)), op, value, value2, width)


def name_pool(arch: Arch) -> tuple[str, ...]:
    """The arch's first ten numbers (neighbours, for range merging) plus :data:`NAME_POOL`."""
    first = sorted(arch.numbers, key=arch.numbers.__getitem__)[:10]
    return tuple(dict.fromkeys(first + list(NAME_POOL)))


@st.composite
def rules(
    draw: st.DrawFn, names: tuple[str, ...], checks: st.SearchStrategy[ArgCheck] | None = None
) -> Rule:
    names = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    args = draw(st.lists(checks or arg_checks(), max_size=3))
    return Rule(tuple(names), draw(actions_()), tuple(args))


@st.composite
def sections(draw: st.DrawFn, arch: Arch) -> Section:
    numbers = sorted(arch.numbers.values())
    return Section(
        default=draw(actions_()),
        rules=tuple(draw(st.lists(rules(name_pool(arch)), max_size=6))),
        mismatch_action=draw(st.none() | actions_()),
        enosys_above=draw(st.none() | st.sampled_from(numbers[:8] + numbers[-2:])),
    )


def constants(section: Section) -> set[int]:
    """Every value a check in ``section`` compares against."""
    found = set()
    for rule in section.rules:
        for check in rule.args:
            found.add(check.value)
            if check.value2 is not None:
                found.add(check.value2)
    return found


def boundary_values(section: Section) -> list[int]:
    """u64 args at the edges of ``section``'s constants, as the acceptance list asks."""
    out = {0, 1, U32_MASK, 1 << 32, U64_MASK, 0x8000000000000000}
    for v in constants(section):
        for near in (v - 1, v, v + 1):
            out.add(near & U64_MASK)
            out.add(-near & U64_MASK)  # the negative, two's complement
            if near & 0x80000000:  # a negative 32-bit int, sign-extended to 64 bits
                out.add(0xFFFFFFFF00000000 | (near & U32_MASK))
    return sorted(out)


def sweep(section: Section, arch: Arch) -> list[SeccompData]:
    """Every interesting number × every boundary value, deterministically.

    Each boundary value goes in all six args at once and, to separate the args of
    one rule, in one arg at a time with the others at 0.
    """
    out = []
    audit = arch.audit_arch
    for nr in _numbers(section, arch):
        for v in boundary_values(section):
            out.append(SeccompData.make(nr, audit, [v] * 6))
            for i in range(6):
                out.append(SeccompData.make(nr, audit, [0] * i + [v]))
    return out


def _numbers(section: Section, arch: Arch) -> list[int]:
    named = {arch.numbers[n] for r in section.rules for n in r.names if n in arch.numbers}
    near = {nr + d for nr in named for d in (-1, 0, 1)}
    if section.enosys_above is not None:
        near |= {section.enosys_above + d for d in (0, 1)}
    edges = {0, X32_SYSCALL_BIT - 1, X32_SYSCALL_BIT, X32_SYSCALL_BIT + 1, U32_MASK}
    return sorted(n & U32_MASK for n in near | edges)


@st.composite
def calls(draw: st.DrawFn, section: Section, arch: Arch) -> SeccompData:
    """One call aimed at ``section``: mostly the right arch, args at its boundaries."""
    nr = draw(st.sampled_from(_numbers(section, arch)) | st.integers(0, U32_MASK))
    right = arch.audit_arch
    # 0x4000003e: libseccomp's API token for x32, which no kernel reports.
    other_arch = st.sampled_from((0, 0x4000003E, right ^ 0x80000000)) | st.integers(
        0, U32_MASK
    )
    audit = right if draw(st.integers(0, 4)) else draw(other_arch)
    edges = boundary_values(section)
    arg = st.sampled_from(edges) | st.integers(0, U64_MASK)
    # The low word of an edge under any high word: what width-32 checks must ignore.
    arg |= st.builds(lambda v, hi: (hi << 32) | (v & U32_MASK), st.sampled_from(edges), _u(32))
    args = draw(st.lists(arg, min_size=6, max_size=6))
    return SeccompData.make(nr, audit, args, ip=draw(_u(64)))


@st.composite
def oracle_checks(draw: st.DrawFn) -> ArgCheck:
    """Checks with the same meaning in libseccomp (see ``libseccomp_oracle``)."""
    check = draw(arg_checks())
    if check.op is Op.MASKED_EQ and check.value2 is not None:
        check = ArgCheck(check.index, check.op, check.value, check.value2 & check.value)
    elif check.width == 32 and check.op is not Op.EQ:
        check = ArgCheck(check.index, check.op, check.value, None, 64)
    return check


@st.composite
def oracle_sections(draw: st.DrawFn, arch: Arch) -> Section:
    """Sections libseccomp can express with the same meaning: one action per syscall.

    Every name gets one action up front; a rule names only syscalls of its action,
    and tests each arg at most once.
    """
    plain = st.sampled_from(actions.PRECEDENCE) | st.builds(
        lambda action, data: action | data,
        st.sampled_from((actions.SECCOMP_RET_ERRNO, actions.SECCOMP_RET_TRACE)),
        st.sampled_from([e for e in ERRNOS if e < MAX_ERRNO]),  # libseccomp refuses 4095
    )
    pool = name_pool(arch)
    action_of_name = {name: draw(plain) for name in pool}
    rules_ = []
    for _ in range(draw(st.integers(0, 8))):
        action = action_of_name[draw(st.sampled_from(pool))]
        same = [name for name in pool if action_of_name[name] == action]
        names = draw(st.lists(st.sampled_from(same), min_size=1, max_size=3))
        checks = draw(st.lists(oracle_checks(), max_size=3, unique_by=lambda c: c.index))
        rules_.append(Rule(tuple(names), action, tuple(checks)))
    return Section(
        default=draw(plain), rules=tuple(rules_), mismatch_action=draw(st.none() | plain)
    )


# -- many eq values on one argument (the compiler's switches) ---------------------------------

# Values that exercise a switch: neighbours (which merge into intervals), a gap of one,
# both sides of the low word's top, and high words other than 0 (the high-word tree).
_SWITCH_VALUES = (
    *range(0, 12), 20, 21, 23, 0x7FFFFFFF, 0x80000000, U32_MASK,
    1 << 32, (1 << 32) + 1, (1 << 32) + 3, (2 << 32) + 1, (5 << 32) | U32_MASK,
    0xFFFFFFFF00000000, U64_MASK - 1, U64_MASK,
)


def switch_values(width: int) -> st.SearchStrategy[int]:
    limit = (1 << width) - 1
    return st.sampled_from([v for v in _SWITCH_VALUES if v <= limit]) | st.integers(0, limit)


@st.composite
def pinning_rules(draw: st.DrawFn, names: tuple[str, ...], index: int, width: int,
                  extra: st.SearchStrategy[ArgCheck] | None = None) -> Rule:
    """A rule pinning ``args[index]`` (``width``) with ``eq``, maybe with other checks."""
    pin = ArgCheck(index, Op.EQ, draw(switch_values(width)), None, width)
    more = draw(st.lists(extra or arg_checks(), max_size=2)) if draw(st.integers(0, 3)) == 0 else []
    picked = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2))
    return Rule(tuple(picked), draw(actions_()), (pin, *more))


@st.composite
def eq_heavy_sections(draw: st.DrawFn, arch: Arch) -> Section:
    """Few syscalls, many rules pinning one or two args to many values (every action),
    some with further checks, and a few rules of other shapes among them."""
    names = name_pool(arch)[:3]
    keys = draw(st.lists(st.tuples(st.integers(0, 5), st.sampled_from((32, 64))),
                         min_size=1, max_size=2))
    pinning = st.sampled_from(keys).flatmap(lambda k: pinning_rules(names, *k))
    others = st.builds(lambda picked, action, args: Rule(tuple(picked), action, tuple(args)),
                       st.lists(st.sampled_from(names), min_size=1, max_size=2), actions_(),
                       st.lists(arg_checks(), min_size=draw(st.integers(0, 1)), max_size=2))
    rules_ = draw(st.lists(pinning, min_size=4, max_size=40))
    rules_ += draw(st.lists(others, max_size=4))
    return Section(
        default=draw(actions_()),
        rules=tuple(draw(st.permutations(rules_))),
        mismatch_action=draw(st.none() | actions_()),
    )


@st.composite
def oracle_eq_sections(draw: st.DrawFn, arch: Arch) -> Section:
    """Many rules pinning args[0] with 64-bit ``eq``, as libseccomp can say them: one
    action per syscall, and other args tested only with plain ``eq`` too."""
    plain = st.sampled_from((actions.SECCOMP_RET_ALLOW, actions.SECCOMP_RET_LOG,
                             actions.SECCOMP_RET_KILL_PROCESS)) | st.builds(
        lambda data: actions.SECCOMP_RET_ERRNO | data, st.sampled_from(ERRNOS[:-1]))
    pool = name_pool(arch)[:4]
    action_of_name = {name: draw(plain) for name in pool}
    default = draw(plain)
    rules_ = []
    for _ in range(draw(st.integers(4, 40))):
        name = draw(st.sampled_from(pool))
        checks = [ArgCheck(0, Op.EQ, draw(switch_values(64)))]
        if draw(st.integers(0, 3)) == 0:
            checks.append(ArgCheck(1, Op.EQ, draw(switch_values(64))))
        rules_.append(Rule((name,), action_of_name[name], tuple(checks)))
    return Section(default=default, rules=tuple(rules_), mismatch_action=draw(st.none() | plain))
