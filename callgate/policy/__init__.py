"""Policies: load a TOML policy or an OCI/Docker seccomp profile into the policy model.

``load_policy(path_or_text)`` picks the format from the file name (``.toml`` /
``.json``) or, failing that, from the content (a JSON profile starts with ``{``).
An OCI profile becomes the policy's ``kernel`` section, resolved for one
architecture, capability set and kernel version (see :mod:`callgate.policy.oci`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from callgate.policy.errors import PolicyError, PolicyWarning, Problem
from callgate.policy.loaded import LoadResult
from callgate.policy.model import ArgCheck, Layer, Op, Policy, Rule, Section
from callgate.policy.oci import OciTarget, load_oci_text
from callgate.policy.toml_loader import load_toml_text

__all__ = [
    "ArgCheck",
    "Layer",
    "LoadResult",
    "OciTarget",
    "Op",
    "Policy",
    "PolicyError",
    "PolicyWarning",
    "Rule",
    "Section",
    "load_policy",
    "load_policy_result",
    "load_policy_text",
    "read_policy_source",
]

# A policy is a short text file; anything this big is a mistake or an attack.
MAX_POLICY_BYTES = 16 * 1024 * 1024
FORMATS = ("toml", "oci")


def load_policy(
    source: str | os.PathLike[str] | bytes,
    *,
    arch: str | None = None,
    caps: Iterable[str] | None = None,
    kernel_version: str | tuple[int, int] | None = None,
    gate_names: Iterable[str] | None = None,
    format: str | None = None,
) -> Policy:
    """Load a policy from a path (``str`` or ``Path``) or from text.

    A ``str`` is treated as policy *text* when it contains a newline or starts with
    ``{``, and as a path otherwise; pass a ``Path`` to be explicit. ``arch``,
    ``caps`` and ``kernel_version`` resolve OCI profiles (:class:`OciTarget` has
    the defaults); ``gate_names`` lists app-defined gates the application registers.
    Warnings (ignored OCI fields, …) are issued as :class:`PolicyWarning`.
    """
    result = load_policy_result(source, arch=arch, caps=caps, kernel_version=kernel_version,
                                gate_names=gate_names, format=format)
    result.issue_warnings()
    return result.policy


def load_policy_result(
    source: str | os.PathLike[str] | bytes,
    *,
    arch: str | None = None,
    caps: Iterable[str] | None = None,
    kernel_version: str | tuple[int, int] | None = None,
    gate_names: Iterable[str] | None = None,
    format: str | None = None,
) -> LoadResult:
    """Like :func:`load_policy`, but also returns rule key paths and warnings (for the lint)."""
    text, name, guessed = read_policy_source(source)
    return load_policy_text(text, source=name, arch=arch, caps=caps,
                            kernel_version=kernel_version, gate_names=gate_names,
                            format=format or guessed)


def read_policy_source(source: str | os.PathLike[str] | bytes) -> tuple[str, str, str]:
    """``(text, display name, format)`` of a path or of literal policy text, as
    :func:`load_policy` reads it (the format from the file name, else the content).

    For callers that cache parsed policies by what the file holds *now*: reading a
    policy file is cheap, parsing it is not, and a cache keyed on the text can never
    hand out a policy the file no longer says.
    """
    text, name, suffix = _read(source)
    return text, name, _format_of(suffix, text)


def load_policy_text(
    text: str,
    *,
    source: str = "<policy>",
    arch: str | None = None,
    caps: Iterable[str] | None = None,
    kernel_version: str | tuple[int, int] | None = None,
    gate_names: Iterable[str] | None = None,
    format: str | None = None,
) -> LoadResult:
    """Load policy text whose format is ``toml``, ``oci``, or guessed from the content."""
    fmt = format or _format_of("", text)
    if fmt == "oci":
        target = OciTarget.resolve(arch=arch, caps=caps, kernel_version=kernel_version,
                                   source=source)
        return load_oci_text(text, source, target)
    if fmt == "toml":
        return load_toml_text(text, source, gate_names=gate_names)
    raise PolicyError([Problem(source, "", f"unknown policy format {fmt!r}; "
                               f"allowed: {', '.join(FORMATS)}")])


def _format_of(suffix: str, text: str) -> str:
    if suffix == ".json":
        return "oci"
    if suffix == ".toml":
        return "toml"
    return "oci" if text.lstrip().startswith("{") else "toml"


def _read(source: str | os.PathLike[str] | bytes) -> tuple[str, str, str]:
    """(text, display name, file suffix) for a path or for literal policy text."""
    if isinstance(source, bytes):
        return _decode(source, "<policy>"), "<policy>", ""
    if isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        return source, "<policy>", ""
    path = Path(source)
    try:
        with path.open("rb") as f:
            # Sized first: read(MAX + 1) alone would allocate 16 MiB for every policy read.
            size = os.fstat(f.fileno()).st_size
            data = f.read(min(size, MAX_POLICY_BYTES) + 1)
            if size < len(data) <= MAX_POLICY_BYTES:  # not a regular file, or it grew
                data += f.read(MAX_POLICY_BYTES + 1 - len(data))
    except OSError as exc:
        raise PolicyError([Problem(str(path), "", f"cannot read the policy file: "
                                   f"{exc.strerror or exc}")]) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError([Problem(str(path), "", f"policy file is larger than "
                                   f"{MAX_POLICY_BYTES} bytes")])
    return _decode(data, str(path)), str(path), path.suffix.lower()


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")  # a BOM (some Windows editors) is not content
    except UnicodeDecodeError as exc:
        raise PolicyError([Problem(name, "", f"policy is not UTF-8 text ({exc.reason} at "
                                   f"byte {exc.start})")]) from None
