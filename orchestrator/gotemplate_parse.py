"""Go text/template's syntax, parsed into a tree of nodes (orchestrator.gotemplate renders it).

A template is a list of nodes: literal text (a ``str``, ``\\t`` and ``\\n`` written as two
characters turned into a tab and a newline, as Docker's CLI does), an ``Action`` (a pipeline
whose value is printed, unless it declares variables), a ``Block`` (``if``, ``range``,
``with``, each with a body and an optional ``else`` list), ``Break`` and ``Continue``.

As in Go, variables are checked here: one is known from its declaration to the ``{{end}}`` of
the control structure it was declared in, and ``$`` (the data) everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import UserError


class TemplateError(UserError):
    pass


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]  # () for ``.``


@dataclass(frozen=True)
class Variable:
    name: str  # ``$`` or ``$x``
    path: tuple[str, ...]  # ``$x.A.B``


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Command:
    """A function and its arguments, or (``func`` None) one value: ``args[0]``."""

    func: str | None
    args: tuple[Any, ...]  # Field, Variable, Literal, Command, Pipeline or Chain


@dataclass(frozen=True)
class Pipeline:
    """``[$a[, $b] :=|=] command | command ...``: each command's value is the next one's last
    argument."""

    decl: tuple[str, ...]
    assign: bool  # ``=`` sets declared variables, ``:=`` declares new ones
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class Chain:
    """``(pipeline).A.B``: fields of a parenthesised pipeline's value."""

    pipe: Pipeline
    path: tuple[str, ...]


@dataclass(frozen=True)
class Action:
    pipe: Pipeline


@dataclass(frozen=True)
class Block:
    kind: str  # "if", "range" or "with"
    pipe: Pipeline
    body: tuple[Node, ...]
    orelse: tuple[Node, ...] | None  # ``{{else if}}`` is an ``if`` Block alone in here


@dataclass(frozen=True)
class Break:
    pass


@dataclass(frozen=True)
class Continue:
    pass


Node = str | Action | Block | Break | Continue
Token = tuple[str, str]  # (kind, text)

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    rf"""(?:
        (?P<str>"(?:[^"\\\n]|\\.)*"|`[^`]*`)
      | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?))
      | (?P<var>\$[A-Za-z0-9_]*(?:\.{_NAME})*)
      | (?P<field>\.(?:{_NAME}(?:\.{_NAME})*)?)
      | (?P<word>{_NAME})
      | (?P<declare>:=)
      | (?P<assign>=)
      | (?P<comma>,)
      | (?P<pipe>\|)
      | (?P<open>\()
      | (?P<close>\)(?:\.{_NAME})*)
    )""",
    re.X,
)
_SPACE = " \t\r\n"
KEYWORDS = ("if", "range", "with", "else", "end", "break", "continue")
UNSUPPORTED = ("define", "template", "block")


def parse(text: str, functions: Collection[str]) -> list[Node]:
    """The template's tree; ``TemplateError`` naming the problem if it is malformed."""
    parser = _Parser(_lex(text), text, functions)
    nodes, stop = parser.sequence()
    if stop is not None:
        raise parser.error(f"unexpected {{{{{stop[0][1]}}}}}")
    return nodes


def _lex(text: str) -> list[str | list[Token]]:
    """Literal text and actions' tokens, with ``{{- -}}`` trimming done and comments dropped."""
    items: list[str | list[Token]] = []
    position = 0
    trim_next = False
    while True:
        start = text.find("{{", position)
        literal = text[position : start if start >= 0 else len(text)]
        if trim_next:
            literal = literal.lstrip(_SPACE)
        if start >= 0 and text.startswith("-", start + 2) and _space_at(text, start + 3):
            literal = literal.rstrip(_SPACE)
            inside = start + 4
        else:
            inside = start + 2
        if "}}" in literal:
            raise _error(text, "unclosed action")  # (a "}}" without its "{{")
        if literal:
            items.append(literal.replace("\\t", "\t").replace("\\n", "\n"))
        if start < 0:
            return items
        if text.startswith("/*", inside):
            position, trim_next = _comment(text, inside)
            continue
        tokens, position, trim_next = _action(text, inside)
        items.append(tokens)


def _comment(text: str, position: int) -> tuple[int, bool]:
    end = text.find("*/", position + 2)
    if end < 0:
        raise _error(text, "unclosed comment")
    end += 2
    if text.startswith("}}", end):
        return end + 2, False
    if _space_at(text, end) and text.startswith("-}}", end + 1):
        return end + 4, True
    raise _error(text, "comment ends before closing delimiter")


def _action(text: str, position: int) -> tuple[list[Token], int, bool]:
    """The tokens from ``position`` to the action's ``}}``; where the text goes on; whether
    that text's leading spaces are trimmed."""
    tokens: list[Token] = []
    while True:
        spaced = _space_at(text, position)
        while _space_at(text, position):
            position += 1
        if position >= len(text):
            raise _error(text, "unclosed action")
        if text.startswith("}}", position):
            return tokens, position + 2, False
        if spaced and text.startswith("-}}", position):
            return tokens, position + 3, True
        match = _TOKEN.match(text, position)
        if match is None:
            end = text.find("}}", position)
            raise _error(text, f"cannot parse {text[position : end if end >= 0 else None]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()


def _space_at(text: str, position: int) -> bool:
    return position < len(text) and text[position] in _SPACE


def _error(template: str, message: str) -> TemplateError:
    return TemplateError(f"template {template!r}: {message}")


def _path(dotted: str) -> tuple[str, ...]:
    return tuple(p for p in dotted.split(".") if p)


class _Parser:
    def __init__(self, items: list[str | list[Token]], template: str, functions: Collection[str]):
        self.items = items
        self.next = 0
        self.template = template
        self.functions = functions
        self.variables = ["$"]  # in scope here
        self.ranges = 0  # how many ranges we are in, for break and continue

    def error(self, message: str) -> TemplateError:
        return _error(self.template, message)

    def sequence(self) -> tuple[list[Node], list[Token] | None]:
        """Nodes up to an ``{{end}}`` or ``{{else ...}}`` (returned: its tokens) or the end."""
        nodes: list[Node] = []
        while self.next < len(self.items):
            item = self.items[self.next]
            self.next += 1
            if isinstance(item, str):
                nodes.append(item)
                continue
            kind, word = item[0] if item else ("", "")
            if kind != "word" or word not in (*KEYWORDS, *UNSUPPORTED):
                nodes.append(Action(self.pipeline(item, "command")))
            elif word in ("end", "else"):
                return nodes, item
            elif word in ("if", "range", "with"):
                nodes.append(self.control(word, item[1:]))
            elif word in ("break", "continue"):
                if len(item) > 1:
                    raise self.error(f"unexpected {item[1][1]!r} in {{{{{word}}}}}")
                if not self.ranges:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}")
                nodes.append(Break() if word == "break" else Continue())
            else:
                raise self.error(f"{word!r} is not supported")
        return nodes, None

    def control(self, kind: str, tokens: list[Token]) -> Block:
        scope = len(self.variables)
        pipe = self.pipeline(tokens, kind)
        self.ranges += kind == "range"
        body, stop = self.sequence()
        self.ranges -= kind == "range"
        orelse: list[Node] | None = None
        if stop is not None and stop[0][1] == "else":
            if len(stop) > 1 and stop[1] == ("word", kind) and kind in ("if", "with"):
                orelse = [self.control(kind, stop[2:])]  # ``else if``: it takes the ``end``
                stop = [("word", "end")]
            elif len(stop) > 1:
                raise self.error(f"unexpected {stop[1][1]!r} after {{{{else}}}} in {{{{{kind}}}}}")
            else:
                orelse, stop = self.sequence()
                if stop is not None and stop[0][1] == "else":
                    raise self.error(f"{{{{{kind}}}}} has two {{{{else}}}}")
        if stop is None:
            raise self.error(f"unclosed {{{{{kind}}}}}: missing {{{{end}}}}")
        if len(stop) > 1:
            raise self.error(f"unexpected {stop[1][1]!r} in {{{{end}}}}")
        del self.variables[scope:]
        return Block(kind, pipe, tuple(body), None if orelse is None else tuple(orelse))

    def pipeline(self, tokens: list[Token], context: str) -> Pipeline:
        decl, assign, tokens = self.declarations(tokens, context)
        if not tokens:
            raise self.error(f"missing value for {context}")
        commands, rest = self.commands(tokens)
        if rest:
            raise self.error(f"unexpected {rest[0][1]!r} in {context}")
        if assign:
            for name in decl:
                self.known(name)
        else:
            self.variables.extend(decl)  # (after the value: ``$x := $x`` needs an earlier $x)
        return Pipeline(decl, assign, commands)

    def declarations(
        self, tokens: list[Token], context: str
    ) -> tuple[tuple[str, ...], bool, list[Token]]:
        kinds = [kind for kind, _ in tokens[:4]]
        names: tuple[str, ...]
        if kinds[:2] in (["var", "declare"], ["var", "assign"]):
            names, operator, rest = (tokens[0][1],), kinds[1], tokens[2:]
        elif kinds[:3] == ["var", "comma", "var"] and kinds[3:] in (["declare"], ["assign"]):
            names, operator, rest = (tokens[0][1], tokens[2][1]), kinds[3], tokens[4:]
            if context != "range":
                raise self.error(f"too many declarations in {context}")
        else:
            return (), False, tokens
        for name in names:
            if "." in name or name == "$":
                raise self.error(f"cannot assign to {name}")
        return names, operator == "assign", rest

    def commands(self, tokens: list[Token]) -> tuple[tuple[Command, ...], list[Token]]:
        """``command | command ...`` up to a ``)`` or the end; the tokens left."""
        out: list[Command] = []
        while True:
            command, tokens = self.command(tokens, piped=bool(out))
            out.append(command)
            if not tokens or tokens[0][0] != "pipe":
                return tuple(out), tokens
            tokens = tokens[1:]

    def command(self, tokens: list[Token], piped: bool) -> tuple[Command, list[Token]]:
        if not tokens or tokens[0][0] in ("pipe", "close"):
            raise self.error("missing command")
        kind, word = tokens[0]
        if kind == "word" and word not in ("true", "false", "nil"):
            self.function(word)
            args, rest = [], tokens[1:]
            while rest and rest[0][0] not in ("pipe", "close"):
                arg, rest = self.operand(rest)
                args.append(arg)
            return Command(word, tuple(args)), rest
        if word == "nil":
            raise self.error("nil is not a command")
        value, rest = self.operand(tokens)
        if piped or (rest and rest[0][0] not in ("pipe", "close")):
            raise self.error("can't give argument to non-function")
        return Command(None, (value,)), rest

    def function(self, word: str) -> None:
        if word in UNSUPPORTED:
            raise self.error(f"{word!r} is not supported")
        if word in KEYWORDS:
            raise self.error(f"unexpected {word!r}")
        if word not in self.functions:
            raise self.error(f'function "{word}" not defined')

    def known(self, name: str) -> None:
        if name not in self.variables:
            raise self.error(f'undefined variable "{name}"')

    def operand(self, tokens: list[Token]) -> tuple[Any, list[Token]]:
        kind, word = tokens[0]
        rest = tokens[1:]
        if kind == "field":
            return Field(_path(word)), rest
        if kind == "var":
            name, _, dotted = word.partition(".")
            self.known(name)
            return Variable(name, _path(dotted)), rest
        if kind == "str":
            return Literal(self.string(word)), rest
        if kind == "num":
            return Literal(self.number(word)), rest
        if kind == "word" and word in ("true", "false", "nil"):
            return Literal({"true": True, "false": False, "nil": None}[word]), rest
        if kind == "word":
            self.function(word)
            return Command(word, ()), rest  # a function without arguments, as an argument
        if kind == "open":
            commands, rest = self.commands(rest)
            if not rest or rest[0][0] != "close":
                raise self.error("unclosed left paren")
            pipe = Pipeline((), False, commands)
            path = _path(rest[0][1][1:])
            return (Chain(pipe, path) if path else pipe), rest[1:]
        raise self.error(f"unexpected {word!r}")

    def string(self, word: str) -> str:
        if word.startswith("`"):
            return word[1:-1]
        try:
            return str(json.loads(word))
        except ValueError:
            raise self.error(f"cannot parse string {word}") from None

    def number(self, word: str) -> int | float:
        try:
            return int(word, 0)
        except ValueError:
            pass
        try:
            return int(word) if word.lstrip("+-").isdigit() else float(word)
        except ValueError:
            raise self.error(f"cannot parse number {word}") from None
