"""What a loader hands back: the policy, where each rule came from, and its warnings.

The compiler only needs the :class:`~callgate.policy.model.Policy`; the lint and
error messages need to point back into the file, so every rule keeps the key
path it was written at (``kernel.rules[2]``, ``syscalls[40]``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from callgate.policy.errors import PolicyWarning, Problem
from callgate.policy.model import Layer, Policy


@dataclass(frozen=True)
class LoadResult:
    """A loaded policy plus, per layer, the key path of each rule (parallel to ``rules``)."""

    policy: Policy
    rule_paths: dict[Layer, tuple[str, ...]] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()
    format: str = "toml"
    # Things worth knowing that are not wrong (a name this arch lacks, a rule runc drops).
    notes: tuple[Problem, ...] = ()

    def issue_warnings(self) -> None:
        """Each warning as a :class:`PolicyWarning`, attributed to whoever asked for the
        policy (the caller of the function that calls this)."""
        for problem in self.warnings:
            warnings.warn(str(problem), PolicyWarning, stacklevel=3)

    def rule_path(self, layer: Layer, index: int) -> str:
        paths = self.rule_paths.get(layer, ())
        return paths[index] if index < len(paths) else f"{layer.value}.rules[{index}]"
