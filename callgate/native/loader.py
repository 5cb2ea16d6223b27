"""Which path callgate runs on, native or pure Python, and the one import of the core.

callgate's native core is ``callgate.native._core``, a cffi API-mode extension compiled
at install time from ``csrc/`` (see ``_build.py`` and ``setup.py``). It is optional:
installing without a C compiler skips it with a warning, and every native piece has a
pure-Python twin that decides identically (slower, and holding the GIL while it works).
The choice is made once, when this module is imported:

* ``CALLGATE_PURE_PYTHON=1`` (any value but empty or ``0``) forces the twins;
* else the core is used if it imports, has every function callgate calls and was built
  from the sources beside it (a stale build left in a checkout by an older version
  counts as not built: ``fingerprint.py``);
* else the twins run, and the first piece that falls back warns once with
  :class:`NativeFallbackWarning`.

``python -m callgate.native`` prints which path is active and why.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from callgate.native.fingerprint import CSRC, source_fingerprint

FORCE_PURE_PYTHON = "CALLGATE_PURE_PYTHON"
# A build of the core to load instead of the installed one (the sanitizer tests build one
# with AddressSanitizer; it is never needed otherwise).
CORE_OVERRIDE = "CALLGATE_NATIVE_CORE"

# Every function of the core that callgate calls, by concern (csrc/<concern>.c).
REQUIRED: dict[str, tuple[str, ...]] = {
    "ticker": (
        "cg_ticks_due",
        "cg_next_tick_ns",
        "cg_ticker_new",
        "cg_ticker_run",
        "cg_ticker_read",
        "cg_ticker_free",
        "cg_count_tick",
        "cg_count_read",
    ),
    "bpf": ("cg_bpf_check", "cg_bpf_run"),
    "gate": (
        "cg_plugin_new",
        "cg_binding_new",
        "cg_gate_entry",
        "cg_call",
        "cg_wasi_set_fd",
        "cg_audit_scan_run",
    ),
}


class NativeFallbackWarning(RuntimeWarning):
    """The native core is not built, so a pure-Python twin runs instead of it."""


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """The active path: ``native`` True with the module's ``file``, or why not."""

    native: bool
    reason: str  # why the twins run; "" when native
    forced: bool  # CALLGATE_PURE_PYTHON asked for the twins
    file: str | None = None

    def describe(self) -> str:
        if self.native:
            return f"native core: {self.file}"
        return f"pure Python: {self.reason}"


def _forced() -> bool:
    return os.environ.get(FORCE_PURE_PYTHON, "") not in ("", "0")


def _load() -> tuple[Any, NativeStatus]:
    if _forced():
        return None, NativeStatus(False, f"{FORCE_PURE_PYTHON} is set", forced=True)
    try:
        override = os.environ.get(CORE_OVERRIDE, "")
        module = _load_file(override) if override else \
            importlib.import_module("callgate.native._core")
    except ImportError as exc:
        return None, NativeStatus(
            False, f"the native core is not built ({exc}); reinstall callgate where a C "
            "compiler and the Python headers are available", forced=False)
    # A variant loaded on purpose (CALLGATE_NATIVE_CORE: a mutant, a sanitized build) is
    # built from other sources; an installed core must match the ones beside it.
    stale = stale_reason(module, check_sources=not override)
    if stale is not None:
        return None, NativeStatus(False, stale, forced=False)
    return module, NativeStatus(True, "", forced=False, file=module.__file__)


def stale_reason(module: Any, *, check_sources: bool = True, csrc: str = CSRC) -> str | None:
    """Why ``module`` is not the core these sources build (None if it is): a function
    callgate calls is missing, or its compiled-in fingerprint is not that of ``csrc``."""
    rebuild = "rebuild it (pip install -e . or python callgate/native/_build.py)"
    missing = [name for names in REQUIRED.values() for name in names
               if not hasattr(module.lib, name)]
    if missing:
        return (f"the native core at {module.__file__} is stale (it lacks "
                f"{', '.join(missing)}); {rebuild}")
    expected = source_fingerprint(csrc) if check_sources else None
    if expected is not None and getattr(module.lib, "CG_SOURCE_FINGERPRINT", None) != expected:
        return (f"the native core at {module.__file__} was built from other sources than "
                f"those in {csrc}; {rebuild}")
    return None


def _load_file(path: str) -> Any:
    """The core built at ``path`` (CALLGATE_NATIVE_CORE), as callgate.native._core."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("callgate.native._core", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{CORE_OVERRIDE}={path} is not an extension module")
    module = importlib.util.module_from_spec(spec)
    sys.modules["callgate.native._core"] = module
    spec.loader.exec_module(module)
    return module


_CORE, _STATUS = _load()
_warned = False


def native_available() -> bool:
    """True when the native core is built, loads, and is not disabled by the env var."""
    return _STATUS.native


def native_status() -> NativeStatus:
    return _STATUS


def core() -> Any:
    """The compiled module (its ``ffi`` and ``lib``), or None on the pure-Python path."""
    return _CORE


def warn_fallback(what: str) -> None:
    """Warn, once per process, that ``what`` runs as its pure-Python twin because the core
    is not built. Silent when the twins were asked for (CALLGATE_PURE_PYTHON)."""
    global _warned
    if _STATUS.native or _STATUS.forced or _warned:
        return
    _warned = True
    warnings.warn(f"callgate: {what} runs in pure Python: {_STATUS.reason}. "
                  "See `python -m callgate.native`.", NativeFallbackWarning,
                  stacklevel=_first_frame_outside_callgate())


def _first_frame_outside_callgate() -> int:
    """The ``stacklevel`` that points a warning at the application's line."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and \
            str(frame.f_globals.get("__name__", "")).partition(".")[0] == "callgate":
        level, frame = level + 1, frame.f_back
    return level
