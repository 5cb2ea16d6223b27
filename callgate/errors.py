"""The root of callgate's exception tree, and the "did you mean" every name error offers.

Every error callgate raises on purpose derives from :class:`CallgateError`, so an
embedding application can catch ours without catching its own bugs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CallgateError(Exception):
    """Base class for every error callgate raises deliberately."""


def suggestion(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidates (up to three), or ``""``.

    One spelling for every unknown name callgate reports - a policy key, a syscall, a
    gate, an action, an arch - so a typo gets the same help wherever it is made.
    """
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
