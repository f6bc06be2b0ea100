"""Go's text/template, as Docker's ``--format`` and ``inspect -f`` use it.

    render(parse("{{.Name}} {{json .State}}"), record)

Supported: literal text (with ``\\t`` and ``\\n`` written as two characters turned into a tab and a
newline, as Docker's CLI does), actions ``{{ ... }}`` (``{{- ... -}}`` trims the spaces around),
``{{/* comments */}}``, field paths ``.A.B`` over dicts (``.`` is the current value), string,
number and ``true``/``false``/``nil`` literals, pipes (``{{.Name | upper}}``), parentheses;
``{{if}}``/``{{else if}}``/``{{else}}``/``{{end}}``, ``{{range}}`` (with ``{{else}}``,
``{{break}}``, ``{{continue}}``), ``{{with}}`` (and ``{{else with}}``); variables (``$x :=``,
``$x =``, ``{{range $i, $e := .X}}``, ``$`` the data, ``$x.A``), scoped as Go scopes them;
functions ``json``, ``index``, ``slice``, ``join``, ``split``, ``upper``, ``lower``, ``title``,
``len``, ``printf``, ``print``, ``println``, ``truncate``, ``pad``, ``eq`` (``eq A B C``: A is B
or C), ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``and``, ``or``, ``not``. Not supported:
``define``, ``template``, ``block``. A template that cannot be parsed, or an error while it
is rendered (a field that does not exist, when ``strict``), is a ``TemplateError``: one line
naming the problem.

The parser is orchestrator.gotemplate_parse, the evaluator orchestrator.gotemplate_eval.
``table`` at the start of a format (``table {{.Names}}\\t{{.Status}}``) is handled here by
``Format``: a header row, then columns aligned as Go's tabwriter aligns Docker's tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator import gotemplate_parse
from orchestrator.gotemplate_eval import FUNCTIONS, MISSING, Header, StrMap, render, text
from orchestrator.gotemplate_parse import Node, TemplateError

__all__ = [
    "MISSING",
    "Format",
    "Node",
    "StrMap",
    "TemplateError",
    "align",
    "parse",
    "render",
    "text",
]


def parse(template: str) -> list[Node]:
    """The template as a tree of nodes; ``TemplateError`` if it is malformed."""
    return gotemplate_parse.parse(template, FUNCTIONS)


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
        return Header(self.names.get(key, key.upper()))


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
