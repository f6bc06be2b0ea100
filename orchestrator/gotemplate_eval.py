"""Rendering a parsed Go template (orchestrator.gotemplate_parse) over data, and its functions.

Data are what JSON gives (dicts, lists, strings, numbers, bools, None). Values print as Go's
fmt prints them with %v; truth is Go's (false, 0, nil, and empty strings, lists and maps are
false); ``range`` over a map goes in sorted key order; variables live in a stack, each control
structure dropping what it declared when it ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.gotemplate_parse import (
    Action,
    Block,
    Break,
    Chain,
    Command,
    Field,
    Literal,
    Node,
    Pipeline,
    TemplateError,
    Variable,
)


class _Missing:
    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()  # a map's missing key (Go: an invalid value), printed as ``<no value>``


class Header(str):
    """A table's column name, standing for a row's field while the header row is rendered:
    fields below it, ``index`` of it, and control structures over it give the name itself."""


class StrMap(dict[str, str]):
    """A map that prints as Docker prints a ps row's labels (``a=1,b=2``) but can be indexed."""

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.items())


_PREDICATES = frozenset(("eq", "ne", "lt", "le", "gt", "ge", "not"))


class _BreakLoop(Exception):
    pass


class _ContinueLoop(Exception):
    pass


def render(nodes: Sequence[Node], data: Any, strict: bool = False) -> str:
    """The template's text for ``data``; ``strict``: a missing field is an error (Docker's ps
    rows are structs), else ``<no value>`` (inspect's JSON is a map)."""
    state = _State(data, strict)
    state.walk(nodes, data)
    return "".join(state.out)


class _State:
    def __init__(self, data: Any, strict: bool) -> None:
        self.strict = strict
        self.variables: list[list[Any]] = [["$", data]]  # [name, value], innermost last
        self.out: list[str] = []

    def walk(self, nodes: Sequence[Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, Action):
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(text(value))
            elif isinstance(node, Block):
                self.block(node, dot)
            elif isinstance(node, Break):
                raise _BreakLoop
            else:
                raise _ContinueLoop

    def block(self, node: Block, dot: Any) -> None:
        scope = len(self.variables)
        try:
            if node.kind == "range":
                self.range(node, dot)
                return
            value = self.pipeline(node.pipe, dot)
            if isinstance(value, Header):
                self.out.append(value)  # a table's header row: the column's name
            elif truth(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            elif node.orelse is not None:
                self.walk(node.orelse, dot)
        finally:
            del self.variables[scope:]

    def range(self, node: Block, dot: Any) -> None:
        value = self.pipeline(Pipeline((), False, node.pipe.commands), dot)
        if isinstance(value, Header):
            self.out.append(value)
            return
        items = _items(value)
        scope = len(self.variables)
        for key, element in items:
            names = node.pipe.decl
            values = (key, element) if len(names) == 2 else (element,)
            assigned = dict(zip(names, values, strict=False))
            for name, item in assigned.items():
                if node.pipe.assign:
                    self.set(name, item)
                else:
                    self.variables.append([name, item])
            try:
                self.walk(node.body, element)
            except _BreakLoop:
                break
            except _ContinueLoop:
                pass
            finally:
                del self.variables[scope:]
        if not items and node.orelse is not None:
            self.walk(node.orelse, dot)

    def pipeline(self, pipe: Pipeline, dot: Any) -> Any:
        value: Any = None
        for i, command in enumerate(pipe.commands):
            value = self.command(command, dot, (value,) if i else ())
        for name in pipe.decl:
            if pipe.assign:
                self.set(name, value)
            else:
                self.variables.append([name, value])
        return value

    def command(self, command: Command, dot: Any, piped: tuple[Any, ...]) -> Any:
        if command.func is None:
            return self.argument(command.args[0], dot)
        if command.func in ("and", "or"):
            return self.logic(command, dot, piped)
        args = [*(self.argument(a, dot) for a in command.args), *piped]
        headers = [a for a in args if isinstance(a, Header)]
        if headers and command.func in _PREDICATES:
            return headers[0]  # so that ``{{if eq .State "x"}}`` heads its column with STATE
        try:
            return FUNCTIONS[command.func](*args)
        except TemplateError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise TemplateError(f"template: error calling {command.func}: {exc}") from None

    def logic(self, command: Command, dot: Any, piped: tuple[Any, ...]) -> Any:
        """``and``: the first false argument, or the last; ``or``: the first true one, or the
        last. As in Go, arguments after the deciding one are not evaluated."""
        args: list[Any] = [*command.args, *(Literal(p) for p in piped)]
        if not args:
            raise TemplateError(f"template: {command.func} needs at least 1 argument")
        value = None
        for arg in args:
            value = self.argument(arg, dot)
            if truth(value) == (command.func == "or"):
                return value
        return value

    def argument(self, node: Any, dot: Any) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Field):
            return self.lookup(dot, node.path, ".")
        if isinstance(node, Variable):
            return self.lookup(self.get(node.name), node.path, node.name + ".")
        if isinstance(node, Chain):
            return self.lookup(self.pipeline(node.pipe, dot), node.path, "(...).")
        if isinstance(node, Pipeline):
            return self.pipeline(node, dot)
        return self.command(node, dot, ())

    def get(self, name: str) -> Any:
        for variable, value in reversed(self.variables):
            if variable == name:
                return value
        raise TemplateError(f'template: undefined variable "{name}"')

    def set(self, name: str, value: Any) -> None:
        for variable in reversed(self.variables):
            if variable[0] == name:
                variable[1] = value
                return
        raise TemplateError(f'template: undefined variable "{name}"')

    def lookup(self, value: Any, path: tuple[str, ...], start: str) -> Any:
        for i, key in enumerate(path):
            if isinstance(value, Header):
                return value
            if isinstance(value, Mapping) and key in value:
                value = value[key]
            elif isinstance(value, Mapping) and not self.strict:
                return MISSING
            else:
                where = start.rstrip(".") + "." + ".".join(path[: i + 1])
                raise TemplateError(f"template: can't evaluate field {key} (at <{where}>)")
        return value


def _items(value: Any) -> list[tuple[Any, Any]]:
    """What ``range`` goes over: (index, element) of a list, (key, value) of a map by key."""
    if value is None or value is MISSING:
        return []
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in sorted(value)]
    if isinstance(value, list | tuple):
        return list(enumerate(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return [(i, i) for i in range(value)]
    raise TemplateError(f"template: range can't iterate over {text(value)}")


def truth(value: Any) -> bool:
    """Go's: false, 0, nil and empty strings, lists and maps are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


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


# -- functions --------------------------------------------------------------------------------


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
        if isinstance(value, Header):
            return value
        if isinstance(value, Mapping):
            value = value.get(key, MISSING if not isinstance(value, StrMap) else "")
        elif isinstance(value, list | tuple | str) and _is_int(key):
            if not 0 <= key < len(value):
                raise TemplateError(f"template: error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"template: can't index item of type {_go_type(value)}")
    return value


def _slice(value: Any, *bounds: Any) -> Any:
    if isinstance(value, Header):
        return value
    if not isinstance(value, list | tuple | str):
        raise TemplateError(f"template: can't slice item of type {_go_type(value)}")
    if len(bounds) > 2 or not all(_is_int(b) for b in bounds):
        raise TemplateError("template: error calling slice: want up to 2 integer indexes")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(value)
    if not 0 <= start <= end <= len(value):
        raise TemplateError(f"template: error calling slice: index out of range: {end}")
    return value[start:end]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _go_type(value: Any) -> str:
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "nil"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    return {bool: "bool", int: "int", float: "float64"}.get(type(value), type(value).__name__)


def _kind(value: Any) -> str:
    """What a value compares as: numbers with numbers (int or float), strings with strings."""
    if value is None or value is MISSING:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return _go_type(value)


def _equal(a: Any, b: Any, name: str = "eq") -> bool:
    ka, kb = _kind(a), _kind(b)
    if "nil" in (ka, kb):
        return ka == kb
    if ka in ("map", "slice") or kb in ("map", "slice"):
        raise TemplateError(f"template: error calling {name}: non-comparable type {ka}")
    if ka != kb:
        raise TemplateError(
            f"template: error calling {name}: incompatible types for comparison ({ka}, {kb})"
        )
    return bool(a == b)


def _eq(first: Any, *others: Any) -> bool:
    """``eq A B C``: A equals B or A equals C."""
    if not others:
        raise TemplateError("template: error calling eq: missing argument for comparison")
    return any(_equal(first, other) for other in others)


def _ordered(name: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def function(a: Any, b: Any) -> bool:
        ka, kb = _kind(a), _kind(b)
        if ka not in ("number", "string") or kb not in ("number", "string"):
            raise TemplateError(f"template: error calling {name}: invalid type for comparison")
        if ka != kb:
            raise TemplateError(
                f"template: error calling {name}: incompatible types for comparison ({ka}, {kb})"
            )
        return compare(a, b)

    return function


def _join(items: Any, sep: str) -> str:
    if isinstance(items, str):
        return items
    return sep.join(text(i) for i in items)


_VERB = re.compile(r"%([-+ 0#]*\d*(?:\.\d+)?)([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    """Go's verbs on Python's: %v and %s print a value as Go would, %q quotes it, %t is a
    bool; the numeric ones (%d, %x, %f, ...) are Python's. A wrong one prints as Go's does."""
    remaining = list(args)

    def verb(match: re.Match[str]) -> str:
        flags, letter = match.groups()
        if letter == "%":
            return "%"
        if not remaining:
            return f"%!{letter}(MISSING)"
        value = remaining.pop(0)
        if letter in "vst":
            return f"%{flags}s" % text(value)
        if letter == "q":
            return f"%{flags}s" % json.dumps(text(value), ensure_ascii=False)
        if letter not in "dxXoeEfFgGc" or isinstance(value, bool | str):
            return _bad(letter, value)
        try:
            return str(f"%{flags}{letter}" % value)
        except (TypeError, ValueError):
            return _bad(letter, value)

    out = _VERB.sub(verb, fmt)
    if remaining:
        out += "%!(EXTRA " + ", ".join(f"{_go_type(v)}={text(v)}" for v in remaining) + ")"
    return out


def _bad(letter: str, value: Any) -> str:
    return f"%!{letter}({_go_type(value)}={text(value)})"


def _truncate(value: Any, length: int) -> str:
    return text(value)[: int(length)]


def _pad(value: Any, before: int, after: int) -> str:
    return " " * int(before) + text(value) + " " * int(after)


def _len(value: Any) -> int:
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise TemplateError(f"template: error calling len: len of {_go_type(value)}")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "slice": _slice,
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
    "eq": _eq,
    "ne": lambda a, b: not _equal(a, b, "ne"),
    "lt": _ordered("lt", lambda a, b: a < b),
    "le": _ordered("le", lambda a, b: a <= b),
    "gt": _ordered("gt", lambda a, b: a > b),
    "ge": _ordered("ge", lambda a, b: a >= b),
    "not": lambda value: not truth(value),
    "and": lambda *values: None,  # (evaluated by _State.logic: they stop early)
    "or": lambda *values: None,
}
