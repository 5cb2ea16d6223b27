"""From the host syscalls a learning run made to the ``[kernel]`` rules a policy still needs.

Most of what the runtime does is granted already: the kernel filter on a host is
*derived* (:func:`callgate.kernel.hostpolicy.derive_host_policy`) from the runtime
baseline, the syscalls each allowed gate declares, and the policy's own ``[kernel]``
rules. So each observed syscall lands in one of four places:

* **covered** - the derived host policy (baseline + the learned gates) allows it already;
* **denied** - no policy may allow it (the always-denied set, ``clone3``): it is dropped,
  because a rule for it would lose anyway;
* **unknown** - callgate's syscall table for this arch has no such name, so no rule can
  name it;
* **added** - an explicit ``allow`` rule. A syscall that a fixed rule denies only with
  some arguments (``clone`` without ``CLONE_THREAD``, ``personality`` changes, W^X on
  ``mmap``) is allowed with the complementary argument check, so the learned rule never
  says the opposite of a fixed rule.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from callgate.arch import Arch, native_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW
from callgate.gates.spec import GateSpec
from callgate.kernel.hostpolicy import ALWAYS_DENIED, derive_host_policy, fixed_rules
from callgate.policy.model import ArgCheck, Op, Policy, Rule


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """Where each observed syscall went, and the rules to write; ``method`` watched them."""

    method: str
    observed: Mapping[str, int]
    covered: Mapping[str, tuple[str, ...]]
    denied: Mapping[str, str]
    unknown: tuple[str, ...]
    added: tuple[Rule, ...]
    default: int
    arch: Arch


def plan_kernel(observed: Mapping[str, int], policy: Policy, gate_specs: Iterable[GateSpec],
                arch: Arch | None = None, method: str = "strace") -> KernelPlan:
    """Sort ``observed`` syscall counts against the host policy ``policy`` derives to.

    ``policy`` is the learned policy *without* a ``[kernel]`` section, so its default is
    the runtime baseline's, as for ``callgate run``'s shipped default policy.
    """
    arch = arch or native_arch()
    host = derive_host_policy(policy, gate_specs, arch=arch)
    fixed = fixed_rules(host.deny_action, arch, exec_after_lockdown=host.exec_after_lockdown)
    covered: dict[str, tuple[str, ...]] = {}
    denied: dict[str, str] = {}
    unknown: list[str] = []
    added: list[Rule] = []
    for name, count in sorted(observed.items()):
        if name not in arch.numbers:
            unknown.append(name)
        elif name in host.reasons:
            covered[name] = host.reasons[name]
        elif name in ALWAYS_DENIED:
            denied[name] = ALWAYS_DENIED[name]
        else:
            naming = [rule for rule in fixed if name in rule.names]
            absolute = next((rule for rule in naming if not rule.args), None)
            if absolute is not None:
                denied[name] = absolute.comment
                continue
            checks = [c for rule in naming if (c := _complement(rule.args)) is not None]
            added.append(Rule((name,), SECCOMP_RET_ALLOW, tuple(checks),
                              comment=f"learned: {count} call(s) during the learning run"))
    return KernelPlan(method, collections.Counter(observed), covered, denied, tuple(unknown),
                      tuple(added), host.section.default, arch)


def _complement(checks: tuple[ArgCheck, ...]) -> ArgCheck | None:
    """One check that holds exactly when ``checks`` (a fixed deny rule's) does not, if any.

    A fixed rule with several checks, or one whose complement is no single check (W+X:
    two bits both set), gets none: that fixed rule keeps denying what it denies.
    """
    if len(checks) != 1:
        return None
    check = checks[0]
    if check.op is Op.NE:
        return dataclasses.replace(check, op=Op.EQ)
    if check.op is Op.EQ:
        return dataclasses.replace(check, op=Op.NE)
    if check.op is Op.MASKED_EQ and check.value.bit_count() == 1:
        return dataclasses.replace(check, value2=check.value ^ (check.value2 or 0))
    return None
