"""A small JSON Schema validator: exactly the keywords callgate's schemas use, no more.

callgate/schemas/*.schema.json are written in a subset of draft 2020-12; this checks a
document against one and returns every problem, each with its JSON path. A keyword
outside the subset is an error, not ignored, so a schema cannot silently ask for more
than this checks. (The jsonschema package would do the same job; for seven schemas
in one subset, 60 lines of test code are lighter than a dependency.)
"""

from __future__ import annotations

from typing import Any

# Keywords that only describe.
ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$comment", "$defs"})
CHECKED = frozenset({"type", "properties", "required", "additionalProperties", "items",
                     "enum", "const", "minimum", "maximum", "oneOf", "$ref"})
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaError(ValueError):
    """The schema itself uses something this validator does not check."""


def problems(doc: Any, schema: dict[str, Any]) -> list[str]:
    """Every way ``doc`` breaks ``schema`` (empty: it validates)."""
    return _check(doc, schema, schema, "$")


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    unknown = set(schema) - CHECKED - ANNOTATIONS
    if unknown:
        raise SchemaError(f"{where}: keywords {sorted(unknown)} are not supported")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise SchemaError(f"{where}: only #/$defs/ references are supported, not {ref}")
        return _check(value, root["$defs"][ref.removeprefix("#/$defs/")], root, where)
    if "oneOf" in schema:
        fits = [not _check(value, option, root, where) for option in schema["oneOf"]]
        if fits.count(True) != 1:
            return [f"{where}: matches {fits.count(True)} of the oneOf options, not exactly 1"]
    out: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            return [f"{where}: {value!r} is not of type {' or '.join(types)}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and TYPES["number"](value) and value < schema["minimum"]:
        out.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if "maximum" in schema and TYPES["number"](value) and value > schema["maximum"]:
        out.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{where}: missing {key!r}" for key in schema.get("required", ())
                if key not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += _check(item, props[key], root, f"{where}.{key}")
            elif extra is False:
                out.append(f"{where}: {key!r} is not in the schema")
            elif isinstance(extra, dict):
                out += _check(item, extra, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += _check(item, schema["items"], root, f"{where}[{i}]")
    return out
