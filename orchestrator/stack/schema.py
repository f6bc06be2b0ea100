"""Validation against ``schemas/stack.schema.json``, reported as one error in plain words.

    validate(data, locator)     # raises StackError("FILE:LINE:COL: services.web.ports[1]: ...")

The schema is the source of truth for which keys exist. Two annotations of ours steer the messages:
``x-unsupported`` marks a Compose key we refuse by name, and ``x-error`` gives the words for a value
that does not match. Of all the validator's errors the one shown is the first in the file; inside a
``anyOf`` the branch that got furthest explains what is wrong.

A valid stack is recognised by closures compiled from the same schema (:mod:`.fastcheck`, ten
times quicker); ``jsonschema`` is asked only when that check says no, and has the last word.
Only the first ``MAX_ERRORS`` errors are looked at, so a huge bad file is refused as quickly.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.stack.fastcheck import Check, Unsupported, compile_schema, unique
from orchestrator.stack.yamlsafe import Locator, PathKey

if TYPE_CHECKING:
    # No stubs for jsonschema are installed (types-jsonschema is not a dependency).
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

MAX_ERRORS = 50
# Package data: a link to schemas/stack.schema.json in the source tree, a copy once installed.
SCHEMA_PATH = Path(__file__).with_name("stack.schema.json")


@cache
def schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def _unique_items(
    validator: Any, wanted: Any, instance: Any, sch: Any
) -> Iterator[ValidationError]:
    # jsonschema compares unhashable items pairwise, which a hostile list of 100 000 mappings
    # turns into minutes; the same JSON equality through hashing is linear.
    from jsonschema.exceptions import ValidationError

    if wanted and validator.is_type(instance, "array") and not unique(instance):
        yield ValidationError("has non-unique elements")


@cache
def validator() -> Any:
    """jsonschema's validator: imported only when needed (a valid file passes the compiled
    check alone, and ``import jsonschema`` costs some 40 ms of every command)."""
    from jsonschema import Draft202012Validator, validators  # type: ignore[import-untyped]

    return validators.extend(Draft202012Validator, {"uniqueItems": _unique_items})(schema())


@cache
def fast_check() -> Check | None:
    try:
        return compile_schema(schema())
    except Unsupported:
        return None


def is_valid(data: Any) -> bool:
    """The yes/no answer: compiled when possible, else ``jsonschema``'s."""
    check = fast_check()
    if check is not None and check(data):
        return True
    return bool(validator().is_valid(data))


def _fast_says_valid(data: Any) -> bool:
    check = fast_check()
    return check is not None and check(data)


def validate(data: Any, locator: Locator) -> None:
    """Raise the most relevant schema error for ``data`` as a :class:`StackError`."""
    if _fast_says_valid(data):
        return
    v = validator()
    # The first errors the validator finds are enough to pick from, and stopping there keeps a
    # file with 100 000 bad entries as quick to refuse as one with a single mistake.
    errors = [_explain(e) for e in itertools.islice(v.iter_errors(data), MAX_ERRORS)]
    if not errors:  # jsonschema is the reference; the compiled check was too strict
        return
    errors.sort(key=lambda pe: (_order(locator, pe[0]), -len(pe[0])))
    path, message = errors[0]
    raise locator.error(path, message)


def _order(locator: Locator, path: PathKey) -> tuple[int, int]:
    _, line, column = locator.find(path)
    return (line or 0, column or 0)


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"{value!r}" if len(value) < 40 else "a string"
    return repr(value)


def _most_specific(error: ValidationError) -> ValidationError | list[ValidationError]:
    """Descend through ``oneOf``/``anyOf`` to the error that says most; a list of type errors
    when no branch applied to the value's type at all."""
    while error.context:
        candidates = list(error.context)
        deepest = max(len(e.absolute_path) for e in candidates)
        at_depth = [e for e in candidates if len(e.absolute_path) == deepest]
        substantive = [e for e in at_depth if e.validator != "type"]
        if deepest == len(error.absolute_path) and not substantive:
            return at_depth  # every branch wanted another type
        pick = substantive or at_depth
        error = min(pick, key=lambda e: (e.validator == "required", len(str(e.message))))
    return error


def _explain(error: ValidationError) -> tuple[PathKey, str]:
    found = _most_specific(error)
    if isinstance(found, list):
        path = tuple(found[0].absolute_path)
        wanted: list[str] = []
        for e in found:
            types = e.schema.get("type")
            for t in [types] if isinstance(types, str) else types or []:
                words = _TYPE_WORDS[t]
                if words not in wanted and t != "null":
                    wanted.append(words)
        return path, f"must be {' or '.join(wanted)}, not {describe(found[0].instance)}"
    return _message(found)


def _message(e: ValidationError) -> tuple[PathKey, str]:
    path: PathKey = tuple(e.absolute_path)
    sch = e.schema if isinstance(e.schema, dict) else {}
    custom = sch.get("x-error")
    validator_name = e.validator
    if validator_name == "not" and sch.get("x-unsupported"):
        key = path[-1] if path else "?"
        return path, f"'{key}' is not supported yet"
    if custom and validator_name not in ("required", "additionalProperties", "type"):
        return path, str(custom)
    if validator_name == "type":
        types = sch.get("type")
        names = [types] if isinstance(types, str) else list(types or [])
        words = " or ".join(_TYPE_WORDS[t] for t in names if t != "null") or "empty"
        return path, f"must be {words}, not {describe(e.instance)}"
    if validator_name == "additionalProperties":
        extras = _extra_keys(e.instance, sch)
        if extras:
            return (*path, extras[0]), f"unknown key '{extras[0]}'"
    if validator_name == "required":
        m = re.match(r"'(.*)' is a required property", e.message)
        key = m.group(1) if m else e.message
        return path, f"missing required key '{key}'"
    if validator_name == "enum":
        allowed = ", ".join(str(x) for x in e.validator_value)
        return path, f"must be one of {allowed}, not {describe(e.instance)}"
    if validator_name == "pattern":
        return path, f"{describe(e.instance)} does not have the expected form ({e.validator_value})"
    if validator_name == "minimum":
        return path, f"must be at least {e.validator_value}"
    if validator_name == "minLength":
        return path, "must not be empty"
    if validator_name == "uniqueItems":
        return path, "contains the same entry twice"
    if validator_name == "oneOf":
        return path, "matches more than one allowed form"
    if validator_name == "false" or e.validator is None:
        return path, "is not allowed here"
    return path, e.message


def _extra_keys(instance: Any, sch: dict[str, Any]) -> list[str]:
    if not isinstance(instance, dict):
        return []
    props = sch.get("properties", {})
    patterns = [re.compile(p) for p in sch.get("patternProperties", {})]
    return [k for k in instance if k not in props and not any(p.search(k) for p in patterns)]
