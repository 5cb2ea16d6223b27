"""The host's kernel policy, derived from a plugin policy: what the process may still do.

The allowlist is the union of three things, each with a reason attached:

* the runtime's measured steady-state baseline (``policies/runtime-baseline.toml``);
* the host syscalls of every gate the plugin policy lets run (``GateSpec.syscalls``,
  declared next to each gate implementation) - so file syscalls appear only when
  filesystem gates are allowed;
* the plugin policy's own ``[kernel]`` rules.

On top come rules no policy can override, because the most restrictive matching
rule always wins: the always-denied set (:data:`ALWAYS_DENIED`) and W^X on
``mmap``/``mprotect``/``pkey_mprotect``.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from callgate.arch import Arch, native_arch
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_TRAP,
    action_of,
)
from callgate.bpf.insn import Insn
from callgate.gates.spec import GateSpec
from callgate.policy import load_policy_text
from callgate.policy.compiler import compile_section
from callgate.policy.model import ArgCheck, Op, Policy, Rule, Section

PROT_WRITE = 0x2
PROT_EXEC = 0x4
CLONE_THREAD = 0x00010000
PERSONALITY_QUERY = 0xFFFFFFFF

# Denied whatever the policy says, each with the reason the docs give.
ALWAYS_DENIED: Mapping[str, str] = MappingProxyType(
    {
        "execve": "would replace the locked host with any program",
        "execveat": "would replace the locked host with any program",
        "fork": "a new process is outside every gate's accounting",
        "vfork": "a new process is outside every gate's accounting",
        "ptrace": "would read and write other processes' memory and registers",
        "process_vm_readv": "reads another process's memory",
        "process_vm_writev": "writes another process's memory",
        "pidfd_getfd": "steals an fd from another process (ptrace access)",
        "process_madvise": "acts on another process's memory",
        "bpf": "loads programs into the kernel",
        "mount": "changes the filesystem namespace",
        "umount": "changes the filesystem namespace",
        "umount2": "changes the filesystem namespace",
        "pivot_root": "changes the filesystem namespace",
        "move_mount": "changes the filesystem namespace",
        "open_tree": "clones mounts",
        "fsopen": "creates a new filesystem context",
        "fsconfig": "configures a new filesystem context",
        "fsmount": "creates a new mount",
        "fspick": "reconfigures an existing mount",
        "mount_setattr": "changes mount properties",
        "kexec_load": "replaces the running kernel",
        "kexec_file_load": "replaces the running kernel",
        "init_module": "loads kernel code",
        "finit_module": "loads kernel code",
        "delete_module": "unloads kernel code",
        "keyctl": "reaches the kernel keyrings shared beyond this process",
        "add_key": "reaches the kernel keyrings shared beyond this process",
        "request_key": "reaches the kernel keyrings shared beyond this process",
        "userfaultfd": "lets a thread stall the kernel mid-copy: a classic exploit primitive",
        "perf_event_open": "a large kernel attack surface and a side channel",
        "io_uring_setup": "io_uring operations are not seen by seccomp at all",
        "io_uring_enter": "io_uring operations are not seen by seccomp at all",
        "io_uring_register": "io_uring operations are not seen by seccomp at all",
    }
)

# Denied only with certain arguments; the reason is in the rule's comment.
_CLONE = "clone"
_PERSONALITY = "personality"
_CLONE3 = "clone3"
_WX_NAMES = ("mmap", "mmap2", "mprotect", "pkey_mprotect")  # mmap2: 32-bit arches

# Actions after which a gate implementation runs (TRAP: the broker may let it).
_DENYING = {SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_ERRNO}


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The derived kernel section and, per allowed syscall, why it is allowed.

    ``allowed`` lists the syscall names some rule allows (possibly only with some
    arguments, like ``clone`` for threads or ``mmap`` without PROT_EXEC);
    ``deny_action`` is what the always-denied set and W^X get.
    """

    section: Section
    arch: Arch
    reasons: Mapping[str, tuple[str, ...]]
    deny_action: int
    exec_after_lockdown: bool = False

    @property
    def allowed(self) -> tuple[str, ...]:
        return tuple(sorted(self.reasons))

    @property
    def default_allows(self) -> bool:
        return action_of(self.section.default) not in _DENYING | {SECCOMP_RET_TRAP}

    def compile(self) -> list[Insn]:
        return compile_section(self.section, self.arch)


@cache
def baseline_text() -> str:
    return (resources.files("callgate.policies") / "runtime-baseline.toml").read_text()


@cache
def load_baseline() -> Section:
    """The shipped runtime baseline as a ``[kernel]`` section."""
    section = load_policy_text(baseline_text(), source="runtime-baseline.toml").policy.kernel
    assert section is not None  # the shipped file has one; tests check it
    return section


def gate_may_run(gates: Section | None, name: str) -> bool:
    """Whether some call of gate ``name`` can reach its implementation under ``gates``.

    A gate is out only if an argument-free rule denies it (the most restrictive
    rule wins, so nothing can bring it back), or if no rule allows it and the
    default denies it.
    """
    if gates is None:
        return False  # no [gates] section: no gate is granted anything
    naming = [rule for rule in gates.rules if name in rule.names]
    if any(not rule.args and action_of(rule.action) in _DENYING for rule in naming):
        return False
    if any(action_of(rule.action) not in _DENYING for rule in naming):
        return True
    return action_of(gates.default) not in _DENYING


def _deny_action(default: int) -> int:
    """The section default when it denies, else KILL_PROCESS."""
    if action_of(default) in _DENYING | {SECCOMP_RET_TRAP}:
        return default
    return SECCOMP_RET_KILL_PROCESS


def clone_flags_index(arch: Arch) -> int:
    """s390 passes clone's stack first and its flags second; everyone else flags first."""
    return 1 if arch.name.startswith("s390") else 0


def fixed_rules(deny: int, arch: Arch, *, exec_after_lockdown: bool = False) -> tuple[Rule, ...]:
    """The rules no policy can override: always-denied, non-thread clone, W^X."""
    prot = ArgCheck(2, Op.MASKED_EQ, PROT_EXEC, PROT_EXEC)
    wx = ArgCheck(2, Op.MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC)
    clone_flags = ArgCheck(clone_flags_index(arch), Op.MASKED_EQ, CLONE_THREAD, 0)
    rules = [
        Rule(tuple(ALWAYS_DENIED), deny, comment="always denied"),
        Rule((_CLONE,), deny, (clone_flags,), comment="clone without CLONE_THREAD is a fork"),
        Rule(
            (_CLONE3,),
            SECCOMP_RET_ERRNO | errno.ENOSYS,
            comment="clone3 hides its flags in memory a filter cannot read; ENOSYS makes "
            "glibc fall back to clone, whose flags it can",
        ),
        Rule(
            (_PERSONALITY,),
            deny,
            (ArgCheck(0, Op.NE, PERSONALITY_QUERY, width=32),),
            comment="personality changes (only the 0xffffffff query is not one)",
        ),
        Rule(_WX_NAMES, deny, (wx,), comment="W^X: never writable and executable at once"),
    ]
    if not exec_after_lockdown:
        rules.append(
            Rule(_WX_NAMES, deny, (prot,), comment="no new executable memory after lockdown")
        )
    return tuple(rules)


def _allowing(rule: Rule) -> bool:
    return action_of(rule.action) not in _DENYING | {SECCOMP_RET_TRAP}


def derive_host_policy(
    policy: Policy,
    gate_specs: Iterable[GateSpec],
    *,
    arch: Arch | None = None,
    baseline: Section | None = None,
    exec_after_lockdown: bool = False,
) -> HostPolicy:
    """The kernel section for a host running a plugin under ``policy``.

    ``gate_specs`` are every gate the host offers (WASI and app gates); only those
    the policy's ``[gates]`` section lets run contribute their syscalls.
    ``exec_after_lockdown`` keeps PROT_EXEC mappings possible (W^X still holds),
    for hosts that must load code after lockdown.
    """
    arch = arch or native_arch()
    base = baseline or load_baseline()
    kernel = policy.kernel
    default = kernel.default if kernel is not None else base.default
    deny = _deny_action(default)
    reasons: dict[str, list[str]] = {}
    rules: list[Rule] = []

    def grant(names: Iterable[str], reason: str) -> None:
        for name in names:
            if name not in ALWAYS_DENIED:
                reasons.setdefault(name, []).append(reason)

    for rule in base.rules:
        rules.append(rule)
        if _allowing(rule):
            grant(rule.names, f"runtime baseline: {rule.comment}" if rule.comment else "baseline")
    for spec in gate_specs:
        if spec.syscalls and gate_may_run(policy.gates, spec.name):
            names = tuple(sorted(spec.syscalls))
            rules.append(Rule(names, SECCOMP_RET_ALLOW, comment=f"gate {spec.name}"))
            grant(names, f"gate {spec.module}.{spec.name}")
    for rule in kernel.rules if kernel is not None else ():
        rules.append(rule)
        if _allowing(rule):
            grant(rule.names, f"[kernel] rule{': ' + rule.comment if rule.comment else ''}")
    rules += fixed_rules(deny, arch, exec_after_lockdown=exec_after_lockdown)
    mismatch = kernel.mismatch_action if kernel is not None else base.mismatch_action
    enosys_above = kernel.enosys_above if kernel is not None else None
    section = Section(default, tuple(rules), mismatch, enosys_above)
    # A name some argument-free rule denies is denied whatever else allows it.
    blocked = {n for rule in rules if not rule.args and not _allowing(rule) for n in rule.names}
    known = {name for name in reasons if name in arch.numbers and name not in blocked}
    return HostPolicy(
        section=section,
        arch=arch,
        reasons=MappingProxyType({n: tuple(dict.fromkeys(reasons[n])) for n in sorted(known)}),
        deny_action=deny,
        exec_after_lockdown=exec_after_lockdown,
    )
