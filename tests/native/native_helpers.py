"""Helpers of the native-core tests (named so no other test directory's module shadows it)."""

from __future__ import annotations

import pytest
from conftest import require

from callgate.native import loader


def require_native() -> None:
    """Skip when the pure-Python path was asked for (CALLGATE_PURE_PYTHON: the suite's second
    run in CI tests that path); otherwise the native core must be there (a failure under
    CI=true, a skip elsewhere)."""
    status = loader.native_status()
    if status.forced:
        pytest.skip("CALLGATE_PURE_PYTHON is set: this run tests the pure-Python path")
    require(status.native, "the native core (callgate.native._core: pip install -e . with a "
            "C compiler)")
