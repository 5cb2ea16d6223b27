"""A fingerprint of the C sources the native core is built from.

``_build.py`` compiles it into the core (``CG_SOURCE_FINGERPRINT``) and the loader
compares it with the sources beside it: a core left in a checkout from older sources
(a changed struct keeps every function name) is never loaded in their place.
"""

from __future__ import annotations

import hashlib
import os

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")


def source_fingerprint(csrc: str = CSRC) -> int | None:
    """60 bits of the SHA-256 of every ``.c`` and ``.h`` in ``csrc`` (names and bytes, in
    name order); None when there are none to read (an install that dropped them)."""
    try:
        names = sorted(n for n in os.listdir(csrc) if n.endswith((".c", ".h")))
    except OSError:
        return None
    if not names:
        return None
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(csrc, name), "rb") as source:
            digest.update(name.encode() + b"\0" + source.read() + b"\0")
    return int(digest.hexdigest()[:15], 16)
