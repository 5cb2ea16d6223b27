"""JSON Schemas of what callgate writes for programs: the ``--json`` documents and audit records.

One file per document, ``NAME.schema.json`` (JSON Schema, draft 2020-12). A document names
its schema and version in its ``schema`` key (``callgate.check/1``); audit records, one
JSON object per line, carry none and follow ``audit-record.schema.json``. docs/json.md
describes each one and the versioning rule: within a version fields may be added, never
removed or changed in meaning, so readers ignore keys they do not know.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

#: Every schema shipped, by name (the file is ``NAME.schema.json``).
NAMES = ("check", "gates", "emu", "explain", "kernel-policy", "learn", "cache", "audit-record")


@cache
def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (one of :data:`NAMES`) as a dict."""
    if name not in NAMES:
        raise KeyError(f"no schema {name!r}; callgate ships {', '.join(NAMES)}")
    text = (resources.files(__name__) / f"{name}.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
