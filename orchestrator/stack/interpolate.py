"""Variable interpolation as Compose does it, and ``.env`` files.

    env = {"TAG": "1.2"}
    interpolate_value("app:${TAG:-latest}", env.get)      # -> "app:1.2"

Forms: ``$VAR``, ``${VAR}``, ``${VAR:-default}`` (unset or empty), ``${VAR-default}`` (unset),
``${VAR:?message}`` / ``${VAR?message}`` (an error), ``${VAR:+other}`` / ``${VAR+other}``, and
``$$`` for a literal ``$``. Defaults may nest (``${A:-${B:-x}}``). A variable that is not set and
has no default becomes the empty string, with a warning, as in Compose. Only values are
interpolated, never keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.stack.yamlsafe import PathKey, decode_text

Lookup = Callable[[str], "str | None"]

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_MAX_NESTING = 16


class InterpolationError(Exception):
    """A bad template or a required variable; the caller adds the position."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Interpolator:
    """Interpolates a whole tree, collecting the names of unset variables."""

    lookup: Lookup
    unset: list[str] = field(default_factory=list)

    def value(self, text: str) -> str:
        if "$" not in text:
            return text
        return _substitute(text, self, 0)

    def tree(self, node: Any, path: PathKey, on_error: Callable[[PathKey, str], Exception]) -> Any:
        """A copy of ``node`` with every string value interpolated (keys are left alone)."""
        if isinstance(node, str):
            try:
                return self.value(node)
            except InterpolationError as exc:
                raise on_error(path, exc.message) from None
        if isinstance(node, dict):
            return {k: self.tree(v, (*path, k), on_error) for k, v in node.items()}
        if isinstance(node, list):
            return [self.tree(v, (*path, i), on_error) for i, v in enumerate(node)]
        return node


def interpolate_value(text: str, lookup: Lookup) -> str:
    return Interpolator(lookup).value(text)


def _substitute(text: str, ctx: Interpolator, depth: int) -> str:
    if depth > _MAX_NESTING:
        raise InterpolationError(f"interpolation nests deeper than {_MAX_NESTING} levels")
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if j + 1 >= n:
            raise InterpolationError(_invalid(text))
        nxt = text[j + 1]
        if nxt == "$":
            out.append("$")
            i = j + 2
            continue
        if nxt == "{":
            end, replacement = _braced(text, j + 2, ctx, depth)
            out.append(replacement)
            i = end
            continue
        m = _NAME.match(text, j + 1)
        if not m:
            raise InterpolationError(_invalid(text))
        out.append(_get(m.group(), ctx))
        i = m.end()
    return "".join(out)


def _invalid(text: str) -> str:
    return (
        f"invalid interpolation in {text!r}: '$' must be followed by a name or '{{' "
        "(write '$$' for a literal dollar sign)"
    )


def _get(name: str, ctx: Interpolator) -> str:
    value = ctx.lookup(name)
    if value is None:
        if name not in ctx.unset:
            ctx.unset.append(name)
        return ""
    return value


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` that closes a ``${`` whose body starts at ``start``."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n and text[i + 1] == "$":
            i += 2
            continue
        if c == "$" and i + 1 < n and text[i + 1] == "{":
            depth += 1
            i += 2
            continue
        if c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise InterpolationError(f"unterminated '${{' in {text!r}")


def _braced(text: str, start: int, ctx: Interpolator, depth: int) -> tuple[int, str]:
    end = _closing_brace(text, start)
    body = text[start:end]
    m = _NAME.match(body)
    if not m:
        raise InterpolationError(f"invalid interpolation '${{{body}}}': expected a variable name")
    name = m.group()
    rest = body[m.end() :]
    if not rest:
        return end + 1, _get(name, ctx)
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise InterpolationError(
            f"invalid interpolation '${{{body}}}': after the name expected '}}', ':-', '-', "
            "':?', '?', ':+' or '+'"
        )
    value = ctx.lookup(name)
    empty_counts = op.startswith(":")
    missing = value is None or (empty_counts and value == "")
    kind = op[-1]
    if kind == "-":
        result = _substitute(arg, ctx, depth + 1) if missing else (value or "")
    elif kind == "+":
        result = "" if missing else _substitute(arg, ctx, depth + 1)
    else:  # "?"
        if missing:
            message = _substitute(arg, ctx, depth + 1) if arg else ""
            state = "is not set" if value is None else "is empty"
            raise InterpolationError(
                f"required variable {name} {state}" + (f": {message}" if message else "")
            )
        result = value or ""
    return end + 1, result


# -- .env files ------------------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:=(.*))?$")


class DotenvError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def parse_dotenv(text: str, lookup: Lookup | None = None) -> dict[str, str]:
    """Parse a ``.env`` / ``env_file``: ``KEY=VALUE`` lines, ``export``, ``#`` comments, single
    quotes (literal), double quotes (escapes and ``${VAR}``), unquoted values (``${VAR}``, and
    `` #`` starts a comment). Earlier keys are visible to later values, after ``lookup``.
    A bare ``KEY`` takes its value from ``lookup`` and is skipped when unset."""
    result: dict[str, str] = {}

    def find(name: str) -> str | None:
        if lookup is not None:
            found = lookup(name)
            if found is not None:
                return found
        return result.get(name)

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        number = i + 1
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ENV_LINE.match(raw)
        if not m:
            raise DotenvError(f"expected KEY=VALUE, got {stripped[:40]!r}", number)
        key, value = m.group(1), m.group(2)
        if value is None:
            found = find(key)
            if found is not None:
                result[key] = found
            continue
        value = value.lstrip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            body = value[1:]
            # A quoted value may span lines.
            while _unclosed(body, quote):
                if i >= len(lines):
                    raise DotenvError(f"unterminated {quote} quote", number)
                body += "\n" + lines[i]
                i += 1
            close = _closing_quote(body, quote)
            inner = body[:close]
            if quote == "'":
                result[key] = inner
            else:
                inner = (
                    inner.replace("\\n", "\n")
                    .replace("\\t", "\t")
                    .replace('\\"', '"')
                    .replace("\\\\", "\\")
                )
                result[key] = _dotenv_interpolate(inner, find, number)
            continue
        comment = value.find(" #")
        if comment >= 0:
            value = value[:comment]
        result[key] = _dotenv_interpolate(value.rstrip(), find, number)
    return result


def _unclosed(body: str, quote: str) -> bool:
    try:
        _closing_quote(body, quote)
    except ValueError:
        return True
    return False


def _closing_quote(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    raise ValueError


def _dotenv_interpolate(value: str, find: Lookup, line: int) -> str:
    if "$" not in value:
        return value
    try:
        return Interpolator(find).value(value)
    except InterpolationError as exc:
        raise DotenvError(exc.message, line) from None


def read_dotenv(path: Path, lookup: Lookup | None = None) -> dict[str, str]:
    """Read ``path`` as a ``.env`` file; errors are :class:`DotenvError` or ``StackError``."""
    with open(path, "rb") as f:
        raw = f.read(1024 * 1024 + 1)
    if len(raw) > 1024 * 1024:
        raise DotenvError("file is larger than 1 MiB", 1)
    return parse_dotenv(decode_text(raw, str(path)), lookup)


def chain(*maps: Mapping[str, str]) -> Lookup:
    """A lookup that tries each map in turn."""

    def lookup(name: str) -> str | None:
        for m in maps:
            if name in m:
                return m[name]
        return None

    return lookup
