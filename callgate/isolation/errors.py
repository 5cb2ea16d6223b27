"""Exceptions across the process boundary: encoded on one side, rebuilt on the other.

An error crosses as its class name, message and simple attributes. When the name is
one of the plugin errors (:mod:`callgate.gates.errors`) or ``GuestExit``, the other
side raises that very class, so code around a plugin catches the same exceptions
whether the plugin is in-process or isolated, in either direction (a worker's
``FuelExhausted`` in the parent, a parent gate's ``OutputLimitExceeded`` in the worker).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Mapping
from typing import Any

from callgate.gates import errors as plugin_errors
from callgate.gates.spec import GuestExit

KNOWN_ERRORS: Mapping[str, type[BaseException]] = {
    **{name: getattr(plugin_errors, name) for name in plugin_errors.__all__},
    "GuestExit": GuestExit,
}


def encode_error(exc: BaseException) -> dict[str, Any]:
    """``type``, ``message``, ``attrs`` and ``traceback`` of ``exc``, ready for the wire."""
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "attrs": simple_attrs(exc),
        "traceback": frames(exc),
    }


def simple_attrs(exc: BaseException) -> dict[str, Any]:
    """The exception's int/str attributes (OSError keeps errno outside ``__dict__``)."""
    attrs = {name: getattr(exc, name, None) for name in ("errno", "strerror", "filename")}
    with contextlib.suppress(TypeError):  # an exception class with __slots__
        attrs.update(vars(exc))
    return {k: v for k, v in attrs.items() if isinstance(v, int | str)}


def frames(exc: BaseException) -> str:
    """Where ``exc`` came from, without source lines: reading them needs openat, and a
    locked worker may not open files."""
    return "\n".join(
        f"  {frame.f_code.co_filename}:{line} in {frame.f_code.co_name}"
        for frame, line in traceback.walk_tb(exc.__traceback__)
    )


def rebuild_error(type_name: str, message: str, attrs: Mapping[str, Any]
                  ) -> BaseException | None:
    """The local exception for an encoded plugin error; None for any other class."""
    cls = KNOWN_ERRORS.get(type_name)
    if cls is None:
        return None
    local = cls.__new__(cls)
    Exception.__init__(local, message)
    for key, value in attrs.items():
        with contextlib.suppress(AttributeError):
            setattr(local, key, value)
    return local
