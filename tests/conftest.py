"""Shared test plumbing.

``require`` implements the house rule for optional tools: a test that needs a
missing tool skips on a developer machine, but fails under ``CI=true``, where the
CI script is responsible for installing everything.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (under CI=true) when ``what`` is not available."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true; .ci/run must install it")
    pytest.skip(f"{what} is not available")
