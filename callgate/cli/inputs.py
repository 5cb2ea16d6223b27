"""What a filter argument names - a policy or a program - by one rule every verb shares.

``run --policy``, ``call --policy``, ``emu``, ``explain`` and ``graph`` take either a
policy or a BPF program; ``check``, ``compile`` and ``kernel policy`` take a policy and
say so when given a program. All of them read their argument here, so one argument means
the same thing to every verb. The rule (:func:`filter_kind`):

1. ``default``, ``default+fs`` and ``allow-all`` name the shipped policies (``callgate
   run``'s least-privilege default, with its filesystem overlay, and allow-every-gate),
   unless a file of that name exists;
2. a file whose name ends in ``.toml`` or ``.json`` is a policy; ``.bpf``, ``.asm`` or
   ``.hex``, a program;
3. any other file (and ``-``, standard input) is told by its content: a policy if its first
   line that is not blank or a ``#`` comment starts with ``[`` (a TOML table) or ``{``
   (a JSON object), else a program (raw BPF, hex or assembly text, as
   :func:`callgate.asm.formats.read_program` reads them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from callgate.arch import Arch
from callgate.asm.formats import is_raw, read_program
from callgate.asm.syntax import choose_arch
from callgate.bpf.insn import Insn
from callgate.errors import CallgateError, suggestion
from callgate.policy import LoadResult, load_policy_text
from callgate.policy.model import Layer, Policy

POLICY_SUFFIXES = (".toml", ".json")
PROGRAM_SUFFIXES = (".bpf", ".asm", ".hex")
# Shipped policies by name: the files (in callgate.policies) merged in this order.
SHIPPED = {
    "default": ("default.toml",),
    "default+fs": ("default.toml", "default-fs.toml"),
    "allow-all": ("allow-all.toml",),
}
# More than any policy or program callgate would load (the loaders have their own limits).
MAX_INPUT_BYTES = 16 * 1024 * 1024
RULE = ("a .toml/.json file or a shipped name (default, default+fs, allow-all) is a policy; "
        "a .bpf/.asm/.hex file a program; any other file is a policy if it starts with "
        "'[' or '{', else a program")


class CliInputError(CallgateError):
    """A file or argument a verb cannot use."""


@dataclass(frozen=True)
class FilterInput:
    """A filter argument, read: its name, what it is, and its bytes."""

    arg: str  # as given on the command line
    kind: str  # "policy" or "program"
    data: bytes  # the file's content (empty for a shipped policy)
    shipped: str | None = None  # the shipped policy's name

    @property
    def name(self) -> str:
        """How messages name it."""
        if self.shipped:
            return f"{self.shipped} (shipped policy)"
        return "<stdin>" if self.arg == "-" else self.arg

    @property
    def is_policy(self) -> bool:
        return self.kind == "policy"


def read_filter_input(arg: str) -> FilterInput:
    """Read ``arg`` (a path, ``-`` for stdin, or a shipped name) and tell what it is."""
    if arg in SHIPPED and not os.path.lexists(arg):
        return FilterInput(arg, "policy", b"", shipped=arg)
    data = _read(arg)
    return FilterInput(arg, filter_kind(arg, data), data)


def filter_kind(arg: str, data: bytes) -> str:
    """``"policy"`` or ``"program"`` for a file named ``arg`` holding ``data`` (the rule in
    this module's docstring, steps 2 and 3)."""
    suffix = Path(arg).suffix.lower() if arg != "-" else ""
    if suffix in POLICY_SUFFIXES:
        return "policy"
    if suffix in PROGRAM_SUFFIXES or is_raw(data[:4096]):
        return "program"
    for line in data[:65536].decode("utf-8", "replace").splitlines():
        text = line.strip().lstrip("\ufeff")
        if text and not text.startswith("#"):
            return "policy" if text[0] in "[{" else "program"
    return "program"


def _read(arg: str) -> bytes:
    try:
        if arg == "-":
            stream = getattr(sys.stdin, "buffer", None)  # a text stand-in has none
            if stream is None:
                return sys.stdin.read(MAX_INPUT_BYTES + 1).encode()
            data: bytes = stream.read(MAX_INPUT_BYTES + 1)
            return data
        with open(arg, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        hint = suggestion(arg, SHIPPED) if os.path.sep not in arg else ""
        shipped = f"; shipped policies: {', '.join(SHIPPED)}" if not hint else ""
        raise CliInputError(f"cannot read {arg}: {exc.strerror or exc}{hint}{shipped}"
                            ) from None
    if len(data) > MAX_INPUT_BYTES:
        raise CliInputError(f"{arg} is larger than {MAX_INPUT_BYTES} bytes; no policy or "
                            "program is that large")
    return data


def require_policy(given: FilterInput, verb: str) -> None:
    """Refuse a program where only a policy makes sense, saying what to use instead."""
    if not given.is_policy:
        raise CliInputError(
            f"{given.name} is a BPF program, not a policy ({RULE}); `callgate {verb}` needs "
            "a policy. For a program use callgate disasm, emu, explain or graph")


def load_policy_input(given: FilterInput, *, arch: str | None = None,
                      caps: Iterable[str] | None = None, kernel_version: str | None = None,
                      gate_names: Iterable[str] | None = None) -> LoadResult:
    """The :class:`LoadResult` of a policy input (the options as ``load_policy_text``'s)."""
    require_policy(given, "this verb")
    caps, gate_names = list(caps or ()), list(gate_names or ())
    if given.shipped is None:
        try:
            text = given.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CliInputError(f"{given.name} is not UTF-8 text ({exc.reason} at byte "
                                f"{exc.start})") from None
        fmt = {".json": "oci", ".toml": "toml"}.get(Path(given.arg).suffix.lower())
        return load_policy_text(text, source=given.name, format=fmt, arch=arch, caps=caps,
                                kernel_version=kernel_version, gate_names=gate_names)
    results = [load_policy_text(_shipped_text(file), source=file, arch=arch, caps=caps,
                                kernel_version=kernel_version, gate_names=gate_names)
               for file in SHIPPED[given.shipped]]
    return _merged(results, given.name)


def shipped_policy(name: str) -> Policy:
    """A shipped policy by name (``default``, ``default+fs``, ``allow-all``)."""
    return load_policy_input(FilterInput(name, "policy", b"", shipped=name)).policy


def _shipped_text(file: str) -> str:
    return (resources.files("callgate.policies") / file).read_text()


def _merged(results: list[LoadResult], source: str) -> LoadResult:
    """Overlays: later files add their [gates] rules to the first's (same default)."""
    first = results[0]
    policy = first.policy
    paths = list(first.rule_paths.get(Layer.GATES, ()))
    for result in results[1:]:
        base, overlay = policy.gates, result.policy.gates
        assert base is not None and overlay is not None
        if overlay.default != base.default:
            raise CliInputError(f"{result.policy.source} must keep the [gates] default of "
                                f"{first.policy.source}")
        policy = replace(policy, gates=replace(base, rules=base.rules + overlay.rules))
        paths += [f"{result.policy.source}: {path}"
                  for path in result.rule_paths.get(Layer.GATES, ())]
    return replace(first, policy=replace(policy, source=source),
                   rule_paths={**first.rule_paths, Layer.GATES: tuple(paths)})


def load_program_input(given: FilterInput, arch: str | None) -> tuple[list[Insn], Arch]:
    """A program input, and the arch its names resolve against (``arch`` first)."""
    from callgate.asm.disassembler import program_arch

    program = read_program(given.data, arch, given.name)
    return program, choose_arch(arch, program_arch(program) if arch is None else None)
