"""A small subset of Go's text/template, as Docker's ``--format`` and ``inspect -f`` use it.

    render(parse("{{.Name}} {{json .State}}"), record)

Supported: literal text (with ``\\t`` and ``\\n`` written as two characters turned into a tab and a
newline, as Docker's CLI does), actions ``{{ ... }}`` (``{{- ... -}}`` trims the spaces around),
field paths ``.A.B`` over dicts (``.`` is the whole value), string and number literals,
functions ``json``, ``index``, ``join``, ``split``, ``upper``, ``lower``, ``title``, ``len``,
``printf``, ``println``, ``truncate``, ``pad``, and pipes (``{{.Name | upper}}``). A template
that cannot be parsed, or a field that does not exist (``strict``), is a ``TemplateError``: one
line naming the problem. ``range``, ``if`` and variables are not supported.

``table`` at the start of a format (``table {{.Names}}\\t{{.Status}}``) is handled by
``Format``: a header row, then columns aligned as Go's tabwriter aligns Docker's tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import UserError


class TemplateError(UserError):
    pass


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]  # () for ``.``


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]  # Field, Literal or Call


Node = str | Call  # literal text, or an action's (piped) expression


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<field>\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<pipe>\|)
      | (?P<open>\()
      | (?P<close>\))
    )""",
    re.X,
)


def parse(text: str) -> list[Node]:
    """The template as text pieces and actions; ``TemplateError`` if it is malformed."""
    nodes: list[Node] = []
    position = 0
    pending = ""
    for match in _ACTION.finditer(text):
        literal = text[position : match.start()]
        if match.group(1):
            literal = literal.rstrip()
        pending += _unescape(literal)
        if pending:
            nodes.append(pending)
            pending = ""
        nodes.append(_expression(match.group(2), text))
        position = match.end()
        if match.group(3):
            rest = text[position:]
            position += len(rest) - len(rest.lstrip())
    tail = text[position:]
    if "{{" in tail or "}}" in tail:
        raise TemplateError(f"template {text!r}: unclosed action")
    if tail:
        nodes.append(_unescape(tail))
    return nodes


def _unescape(text: str) -> str:
    return text.replace("\\t", "\t").replace("\\n", "\n")


def _expression(source: str, template: str) -> Call:
    tokens = _tokens(source, template)
    if not tokens:
        raise TemplateError(f"template {template!r}: missing value for command")
    expr, rest = _pipeline(tokens, template)
    if rest:
        raise TemplateError(f"template {template!r}: unexpected {rest[0][1]!r}")
    return expr


def _tokens(source: str, template: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    source = source.strip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise TemplateError(f"template {template!r}: cannot parse {source[position:]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
        while position < len(source) and source[position].isspace():
            position += 1
    return out


def _pipeline(tokens: list[tuple[str, str]], template: str) -> tuple[Call, list[tuple[str, str]]]:
    """command ( | command )*: each command's value is the next one's last argument."""
    expr, tokens = _command(tokens, template, None)
    while tokens and tokens[0][0] == "pipe":
        expr, tokens = _command(tokens[1:], template, expr)
    return expr, tokens


def _command(
    tokens: list[tuple[str, str]], template: str, piped: Call | None
) -> tuple[Call, list[tuple[str, str]]]:
    if not tokens or tokens[0][0] in ("pipe", "close"):
        raise TemplateError(f"template {template!r}: missing command")
    kind, text = tokens[0]
    args: list[Any] = []
    if kind == "word":
        if text in ("range", "if", "with", "end", "else", "define", "template", "block"):
            raise TemplateError(f"template {template!r}: {text!r} is not supported")
        if text in ("true", "false"):
            name, rest = "_value", tokens
        elif text not in FUNCTIONS:
            raise TemplateError(f'template {template!r}: function "{text}" not defined')
        else:
            name, rest = text, tokens[1:]
    else:
        name, rest = "_value", tokens
    while rest and rest[0][0] not in ("pipe", "close"):
        arg, rest = _operand(rest, template)
        args.append(arg)
        if name == "_value" and len(args) > 1:
            raise TemplateError(f"template {template!r}: can't give argument to non-function")
    if piped is not None:
        if name == "_value":
            raise TemplateError(f"template {template!r}: can't give argument to non-function")
        args.append(piped)
    return Call(name, tuple(args)), rest


def _operand(tokens: list[tuple[str, str]], template: str) -> tuple[Any, list[tuple[str, str]]]:
    kind, text = tokens[0]
    if kind == "field":
        return Field(tuple(p for p in text[1:].split(".") if p)), tokens[1:]
    if kind == "str":
        value = text[1:-1] if text.startswith("`") else json.loads(text)
        return Literal(value), tokens[1:]
    if kind == "num":
        return Literal(float(text) if "." in text else int(text)), tokens[1:]
    if kind == "word" and text in ("true", "false"):
        return Literal(text == "true"), tokens[1:]
    if kind == "word" and text in FUNCTIONS:
        return Call(text, ()), tokens[1:]  # a function without arguments, as an operand
    if kind == "open":
        expr, rest = _pipeline(tokens[1:], template)
        if not rest or rest[0][0] != "close":
            raise TemplateError(f"template {template!r}: unclosed left paren")
        return expr, rest[1:]
    raise TemplateError(f"template {template!r}: unexpected {text!r}")


# -- evaluation -------------------------------------------------------------------------------


def render(nodes: Sequence[Node], data: Any, strict: bool = False) -> str:
    """The template's text for ``data``; ``strict``: a missing field is an error (Docker's ps
    rows are structs), else ``<no value>`` (inspect's JSON is a map)."""
    out = []
    for node in nodes:
        out.append(node if isinstance(node, str) else text(_eval(node, data, strict)))
    return "".join(out)


def _eval(node: Any, data: Any, strict: bool) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Field):
        return _lookup(data, node.path, strict)
    args = [_eval(a, data, strict) for a in node.args]
    if node.name == "_value":
        return args[0] if args else None
    try:
        return FUNCTIONS[node.name](*args)
    except TemplateError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise TemplateError(f"template: error calling {node.name}: {exc}") from None


class _Missing:
    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def _lookup(data: Any, path: tuple[str, ...], strict: bool) -> Any:
    value = data
    for i, key in enumerate(path):
        if isinstance(value, _Header):
            return value  # (a table's header row: fields below a column are its name)
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, Mapping) and not strict:
            return MISSING
        else:
            where = "." + ".".join(path[: i + 1])
            raise TemplateError(f"template: can't evaluate field {key} (at <{where}>)")
    return value


def text(value: Any) -> str:
    """A value as Go's fmt prints it with %v: maps as ``map[k:v]``, lists as ``[a b]``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, StrMap):
        return str(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{text(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(text(v) for v in value) + "]"
    return str(value)


class StrMap(dict[str, str]):
    """A map that prints as Docker prints a ps row's labels (``a=1,b=2``) but can be indexed."""

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.items())


def _json(value: Any) -> str:
    if value is MISSING:
        return "null"
    return json.dumps(_plain(value), separators=(",", ":"), default=str, ensure_ascii=False)


def _plain(value: Any) -> Any:
    """StrMaps as the strings they print as (Docker's ps rows hold labels as a string)."""
    if isinstance(value, StrMap):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, _Header):
            return value
        if isinstance(value, Mapping):
            value = value.get(key, MISSING if not isinstance(value, StrMap) else "")
        elif isinstance(value, list | tuple | str) and isinstance(key, int):
            value = value[key]
        else:
            raise TemplateError(f"template: can't index item of type {_go_type(value)}")
    return value


def _go_type(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    return type(value).__name__


def _join(items: Any, sep: str) -> str:
    if isinstance(items, str):
        return items
    return sep.join(text(i) for i in items)


def _printf(fmt: str, *args: Any) -> str:
    # Go's verbs mapped onto Python's: %v and %s print the value as Go would, %q quotes.
    converted = re.sub(r"%([-+ 0#]*\d*(?:\.\d+)?)([vq])", lambda m: f"%{m.group(1)}s", fmt)
    values = [
        json.dumps(text(a)) if verb == "q" else text(a)
        for a, verb in zip(args, _verbs(fmt), strict=False)
    ]
    values += [text(a) for a in args[len(values) :]]
    return converted % tuple(values)


def _verbs(fmt: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"%([-+ 0#]*\d*(?:\.\d+)?)([a-zA-Z%])", fmt)]


def _truncate(value: Any, length: int) -> str:
    return text(value)[: int(length)]


def _pad(value: Any, before: int, after: int) -> str:
    return " " * int(before) + text(value) + " " * int(after)


def _len(value: Any) -> int:
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise TemplateError(f"template: len of {_go_type(value)}")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "join": _join,
    "split": lambda value, sep: text(value).split(sep),
    "upper": lambda value: text(value).upper(),
    "lower": lambda value: text(value).lower(),
    "title": lambda value: text(value).title(),
    "len": _len,
    "printf": _printf,
    "print": lambda *values: "".join(text(v) for v in values),
    "println": lambda *values: " ".join(text(v) for v in values) + "\n",
    "truncate": _truncate,
    "pad": _pad,
}


# -- formats: a template per row, or a table -------------------------------------------------


class Format:
    """A ``--format`` value: ``table [TEMPLATE]`` or a template, rendered per row.

    ``headers`` names the column of each top-level field (``Names`` -> ``NAMES``); a table's
    header row is the template rendered over them, as Docker does."""

    def __init__(self, spec: str, headers: Mapping[str, str], default_table: str) -> None:
        self.table = spec == "table" or spec.startswith("table ")
        body = spec[len("table") :].lstrip() if self.table else spec
        if self.table and not body:
            body = default_table
        self.nodes = parse(body)
        self.headers = headers

    def lines(self, rows: Sequence[Any], strict: bool = True) -> list[str]:
        out = [render(self.nodes, row, strict) for row in rows]
        if not self.table:
            return out
        header = render(self.nodes, _Headers(self.headers), strict=False)
        return align([header, *out])


class _Headers(dict[str, Any]):
    """Stands for a row while the header row is rendered: every field is its column name."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__()
        self.names = headers

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> Any:
        return _Header(self.names.get(key, key.upper()))


class _Header(str):
    """A column name: fields below it and ``index`` of it give the name itself."""


def align(lines: Sequence[str], minwidth: int = 10, padding: int = 3) -> list[str]:
    """Tab-separated cells in columns, as Go's tabwriter does for Docker's tables (minimum
    width 10, padding 3): a cell followed by a tab is padded; the last one is not."""
    rows = [line.split("\n") for line in lines]
    flat = [r for row in rows for r in row]
    cells = [line.split("\t") for line in flat]
    widths: list[int] = []
    for row in cells:
        for i, cell in enumerate(row[:-1]):
            if i >= len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(cell))
    widths = [max(minwidth, w + padding) for w in widths]
    out = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append("".join(padded) + row[-1])
    return out
