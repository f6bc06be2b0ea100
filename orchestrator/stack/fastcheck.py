"""A compiled yes/no check of a JSON Schema, for the common case where the stack is valid.

    check = compile_schema(schema)      # raises Unsupported for a keyword it does not know
    check(instance)                     # True when valid

``jsonschema`` walks the schema anew for every value and costs about 0.3 ms per service; closures
compiled once answer the same question about ten times faster. Only the yes/no answer is taken from
here: when it says no, :mod:`.schema` asks ``jsonschema`` for the errors, and ``jsonschema`` stays
the reference (a test checks the two agree on the corpus and on many mutated documents). Only the
keywords our schema uses are compiled; any other keyword raises :class:`Unsupported` and the
caller falls back to ``jsonschema`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_IGNORED = {"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples"}


class Unsupported(Exception):
    pass


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float))
    raise Unsupported(f"type {name}")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def canonical(value: Any) -> Any:
    """A hashable key with JSON equality: ``1 == 1.0``, ``True != 1``, mappings unordered."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("d", frozenset((k, canonical(v)) for k, v in value.items()))
    return ("z", None)


def unique(items: list[Any]) -> bool:
    """Linear time, where the obvious pairwise comparison is quadratic (hostile lists)."""
    return len({canonical(x) for x in items}) == len(items)


def compile_schema(root: dict[str, Any]) -> Check:
    cache: dict[str, Check] = {}

    def resolve(ref: str) -> Check:
        if not ref.startswith("#/"):
            raise Unsupported(f"$ref {ref}")
        if ref not in cache:
            node: Any = root
            for part in ref[2:].split("/"):
                node = node[part]
            # Placeholder first, so that a recursive reference finds an entry.
            cache[ref] = lambda v: compiled(v)
            compiled = build(node)
            cache[ref] = compiled
        return cache[ref]

    def build(schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise Unsupported(repr(schema))
        checks: list[Check] = []
        for key, _arg in schema.items():
            if key in _IGNORED or key.startswith("x-"):
                continue
            if key not in _KEYWORDS:
                raise Unsupported(key)
        if "$ref" in schema:
            checks.append(resolve(schema["$ref"]))
        if "type" in schema:
            names = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
            for n in names:
                _is_type(None, n)  # raises Unsupported for an unknown type name
            checks.append(lambda v, names=names: any(_is_type(v, n) for n in names))  # type: ignore[misc]
        if "enum" in schema:
            options = list(schema["enum"])
            checks.append(lambda v: any(_json_equal(v, o) for o in options))
        if "pattern" in schema:
            rx = re.compile(schema["pattern"])
            checks.append(lambda v: not isinstance(v, str) or rx.search(v) is not None)
        if "minLength" in schema:
            n = schema["minLength"]
            checks.append(lambda v: not isinstance(v, str) or len(v) >= n)
        if "minimum" in schema:
            low = schema["minimum"]
            checks.append(lambda v: not _is_type(v, "number") or v >= low)
        if schema.get("uniqueItems"):
            checks.append(lambda v: not isinstance(v, list) or unique(v))
        if "items" in schema:
            item = build(schema["items"])
            checks.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
        if "required" in schema:
            required = list(schema["required"])
            checks.append(lambda v: not isinstance(v, dict) or all(k in v for k in required))
        if any(k in schema for k in ("properties", "patternProperties", "additionalProperties")):
            checks.append(_object(schema, build))
        if "anyOf" in schema:
            branches = [build(s) for s in schema["anyOf"]]
            checks.append(lambda v: any(b(v) for b in branches))
        if "oneOf" in schema:
            one = [build(s) for s in schema["oneOf"]]
            checks.append(lambda v: sum(1 for b in one if b(v)) == 1)
        if "not" in schema:
            negated = build(schema["not"])
            checks.append(lambda v: not negated(v))
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)

    return build(root)


_KEYWORDS = {
    "$ref",
    "type",
    "enum",
    "pattern",
    "minLength",
    "minimum",
    "uniqueItems",
    "items",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "anyOf",
    "oneOf",
    "not",
}


def _object(schema: dict[str, Any], build: Callable[[Any], Check]) -> Check:
    props = {k: build(s) for k, s in schema.get("properties", {}).items()}
    patterns = [(re.compile(p), build(s)) for p, s in schema.get("patternProperties", {}).items()]
    additional = build(schema["additionalProperties"]) if "additionalProperties" in schema else None

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key, item in value.items():
            matched = False
            prop = props.get(key)
            if prop is not None:
                matched = True
                if not prop(item):
                    return False
            for rx, sub in patterns:
                if rx.search(key):
                    matched = True
                    if not sub(item):
                        return False
            if not matched and additional is not None and not additional(item):
                return False
        return True

    return check
