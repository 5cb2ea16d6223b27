"""``callgate learn``: a least-privilege policy from what a guest can do and what it did.

Two analyses meet here:

* static - the module's import table (:mod:`.imports`) bounds what any run could call;
* dynamic - a learning run (:mod:`.recorder`, in its own process: :mod:`.runner`) with
  every gate allowed and recorded, optionally under strace for the host's syscalls
  (:mod:`.kernel_trace`).

:mod:`.gate_section` and :mod:`.kernel_section` turn the observations into rules,
:mod:`.synth` into commented TOML. docs/learn.md teaches the method and its limits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from callgate.gates.wasi import WasiConfig
from callgate.learn.gate_section import GatePlan, plan_gates
from callgate.learn.imports import StaticImports, imported_gates
from callgate.learn.kernel_section import KernelPlan, plan_kernel
from callgate.learn.recorder import LearningFailed, Recording
from callgate.learn.runner import run_learning
from callgate.learn.synth import RunDescription, policy_text
from callgate.policy import Policy, load_policy
from callgate.runtime.limits import Limits

__all__ = ["Learned", "LearningFailed", "learn"]


@dataclass(frozen=True, slots=True)
class Learned:
    """The learned policy (``text``, and loaded as ``policy``) and the evidence behind it."""

    text: str
    policy: Policy
    static: StaticImports
    recording: Recording
    gates: tuple[GatePlan, ...]
    kernel: KernelPlan | None

    def summary(self) -> list[str]:
        """A few lines for the user: what was bounded, seen, allowed and dropped."""
        calls = sum(plan.calls for plan in self.gates)
        used = sum(1 for plan in self.gates if plan.calls)
        pinned = sum(1 for plan in self.gates if plan.pinned)
        rules = sum(len(plan.combos) for plan in self.gates)
        lines = [f"{self.static.name}: {used} of {len(self.static.gates)} imported "
                 f"gates used ({calls} calls); the guest exited with status "
                 f"{self.recording.exit_code}",
                 f"[gates] {rules} allow rules, {pinned} gates with pinned arguments; "
                 f"{len(self.static.gates) - len(self.gates)} imported gates denied"]
        if self.kernel is None:
            lines.append("[kernel] not learned (--no-kernel)")
        else:
            k = self.kernel
            lines.append(f"[kernel] {len(k.observed)} syscalls seen during the run: "
                         f"{len(k.covered)} already allowed, {len(k.added)} added, "
                         f"{len(k.denied) + len(k.unknown)} dropped")
        return lines


def learn(module: str | os.PathLike[str], config: WasiConfig, limits: Limits | None = None, *,
          kernel: str | None = "auto", stdout: IO[str] | int | None = None) -> Learned:
    """Learn a policy for WASI command ``module`` from one run with ``config``'s args/env/dirs.

    The run happens in a child process whose stdio is this process's (``config``'s stdio
    settings are not used), except that the guest's stdout goes to ``stdout`` when given.
    ``kernel`` says how to watch the run's host syscalls for the ``[kernel]`` section:
    ``auto`` (strace if installed, else USER_NOTIF), ``strace``, ``user_notif``, or
    None for no ``[kernel]`` section. Raises
    ``ImportRefused`` for a module that could not be loaded at all, and
    :class:`LearningFailed` when the run does not finish.
    """
    static = imported_gates(module)
    run = run_learning(module, config, limits or Limits(), kernel=kernel, stdout=stdout)
    plans = plan_gates(static.gates, run.recording.uses)
    description = RunDescription(
        args=list(config.args), env_names=sorted(config.env),
        preopens=[f"{p.guest} ({os.fspath(p.host)}{', read-only' if p.readonly else ''})"
                  for p in config.preopens],
        exit_code=run.recording.exit_code)
    name = Path(module).name
    kernel_plan = None
    if run.syscalls is not None and run.method is not None:
        gates_only = load_policy(policy_text(name, static, plans, None, description))
        kernel_plan = plan_kernel(run.syscalls, gates_only, static.table, method=run.method)
    text = policy_text(name, static, plans, kernel_plan, description)
    return Learned(text, load_policy(text), static, run.recording, plans, kernel_plan)
