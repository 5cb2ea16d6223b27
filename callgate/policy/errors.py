"""Policy errors and warnings that point at the exact place in the file.

Every problem carries the file it came from and a *key path* such as
``kernel.rules[3].args[1].op`` or ``syscalls[12].names[0]``, so a user can find
the offending line without guessing. A loader collects every problem it can see
before raising, so one run shows them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from callgate.errors import CallgateError


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a policy: where it is and what is wrong (and what is allowed)."""

    source: str
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.key_path}" if self.key_path else self.source
        return f"{where}: {self.message}"


class PolicyError(CallgateError, ValueError):
    """A policy file that cannot be loaded; ``problems`` lists every reason, in file order."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        if not problems:
            raise ValueError("PolicyError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__(str(self))

    @property
    def source(self) -> str:
        return self.problems[0].source

    @property
    def file(self) -> str:
        """The policy file (or ``<policy>`` for text), same as :attr:`source`."""
        return self.problems[0].source

    @property
    def key_path(self) -> str:
        return self.problems[0].key_path

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems in {self.source}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class PolicyWarning(UserWarning):
    """Something a loader accepted but the user should know (an ignored OCI field, …)."""


class ProblemList:
    """Collects problems while a loader walks a file, then raises them all at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, key_path: str, message: str) -> None:
        self.errors.append(Problem(self.source, key_path, message))

    def warn(self, key_path: str, message: str) -> None:
        self.warnings.append(Problem(self.source, key_path, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise PolicyError(self.errors)
