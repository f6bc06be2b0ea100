"""A YAML reader that is safe on hostile input and remembers where every value came from.

    doc = read_yaml_file(Path("compose.yaml"))
    doc.data                       # plain dicts, lists, str, int, float, bool, None
    doc.position(("services", "web", "ports", 1))   # -> (line, column), 1-based

PyYAML's own constructors keep the last of two duplicate keys, expand aliases without limit and
recurse once per nesting level. Here the event stream of the (C, when available) parser is turned
into values by an iterative builder that:

- rejects a duplicate key, naming both lines;
- caps nesting depth (``[[[[...`` fails at ``MAX_DEPTH``, without recursion);
- counts the nodes an alias expands to and stops at ``MAX_ALIAS_NODES`` / ``MAX_NODES``
  (billion laughs), and refuses an alias to a node that is still open (recursive alias);
- caps the file size, and reports bad UTF-8, control characters and tabs with their line.

Scalars are resolved with the YAML 1.2 core schema, as the Compose Specification does (``no`` and
``on`` stay strings; ``22:22`` is not a base-60 number). ``<<`` merge keys are honoured. Mapping keys
are kept as the text written in the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import StackError

# Limits, chosen so that the worst file within them is read in well under a second here: a stack
# of 1000 typical services has about 53 000 values in 480 KiB.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_ALIAS_NODES = 100_000

PathKey = tuple[str | int, ...]
Position = tuple[int, int]

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9]+$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")
# YAML's printable set: tab, line breaks, and everything else except C0/C1 controls, DEL, U+FFFE/F.
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")

_CORE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


@dataclass
class YamlDocument:
    """The values of one YAML file and the (line, column) of each path in it."""

    file: str
    data: Any
    positions: dict[PathKey, Position] = field(default_factory=dict)

    def position(self, path: PathKey) -> Position | None:
        """Where ``path`` was written; for a value reached through an alias, where its nearest
        written ancestor is."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(path[:end])
            if pos is not None:
                return pos
        return None


def read_yaml_file(path: Path, display: str | None = None) -> YamlDocument:
    """Read and parse ``path``; every problem is a :class:`StackError` naming the file."""
    name = display or str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise StackError("file not found", file=name) from None
    except IsADirectoryError:
        raise StackError("is a directory, not a stack file", file=name) from None
    except OSError as exc:
        raise StackError(f"cannot read: {exc.strerror}", file=name) from None
    return parse_yaml_bytes(raw, name)


def parse_yaml_bytes(raw: bytes, file: str = "<stack>") -> YamlDocument:
    if len(raw) > MAX_FILE_BYTES:
        raise StackError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=file)
    text = decode_text(raw, file)
    return parse_yaml_text(text, file)


def decode_text(raw: bytes, file: str) -> str:
    """Decode strict UTF-8 (a BOM is allowed), reporting the line of a bad byte."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise StackError(
            f"invalid UTF-8 (byte 0x{raw[exc.start]:02x})", file=file, line=line, column=column
        ) from None
    check_characters(text, file)
    return text


def check_characters(text: str, file: str) -> None:
    """Refuse control characters, which YAML does not allow, naming their line."""
    bad = _BAD_CHAR.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise StackError(
            f"control character U+{ord(bad.group()):04X} is not allowed",
            file=file,
            line=line,
            column=column,
        )


def parse_yaml_text(text: str, file: str = "<stack>") -> YamlDocument:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise StackError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=file)
    check_characters(text, file)
    builder = _Builder(file)
    try:
        builder.run(yaml.parse(text, Loader=_Parser))
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, file) from None
    except yaml.YAMLError as exc:  # pragma: no cover - the parser always gives marks
        raise StackError(f"invalid YAML: {exc}", file=file) from None
    return YamlDocument(file, builder.result, builder.positions)


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, file: str) -> StackError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    problem = (exc.problem or "syntax error").strip()
    if mark is not None:
        lines = text.splitlines()
        if mark.line < len(lines):
            where = lines[mark.line]
            if (mark.column < len(where) and where[mark.column] == "\t") or (
                "\t" in where[: mark.column + 1] and "cannot start any token" in problem
            ):
                return StackError(
                    "tab character where YAML needs spaces (indent with spaces only)",
                    file=file,
                    line=line,
                    column=(where.index("\t") + 1),
                )
    message = f"invalid YAML: {problem}"
    if exc.context:
        message += f" ({exc.context.strip()})"
    return StackError(message, file=file, line=line, column=column)


class _Frame:
    __slots__ = (
        "anchor",
        "explicit",
        "key",
        "key_mark",
        "kind",
        "merges",
        "nodes_at_start",
        "path",
        "value",
    )

    def __init__(
        self, kind: str, value: Any, path: PathKey, anchor: str | None, nodes: int
    ) -> None:
        self.kind = kind
        self.value = value
        self.path = path
        self.anchor = anchor
        self.nodes_at_start = nodes
        self.key: str | None = None
        self.key_mark: Position | None = None
        self.explicit: dict[str, Position] = {}
        self.merges: list[dict[str, Any]] = []


_NO_KEY = object()


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.result: Any = None
        self.positions: dict[PathKey, Position] = {}
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.alias_nodes = 0
        self.documents = 0

    def error(self, message: str, mark: Any, path: PathKey | None = None) -> StackError:
        return StackError(
            message,
            file=self.file,
            line=mark.line + 1 if mark is not None else None,
            column=mark.column + 1 if mark is not None else None,
            path=format_path(path) if path else None,
        )

    def run(self, events: Iterator[yaml.Event]) -> None:
        for event in events:
            if isinstance(event, yaml.ScalarEvent):
                self.scalar(event)
            elif isinstance(event, yaml.MappingStartEvent):
                self.start(event, "map", {})
            elif isinstance(event, yaml.SequenceStartEvent):
                self.start(event, "seq", [])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                self.end(event)
            elif isinstance(event, yaml.AliasEvent):
                self.alias(event)
            elif isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise self.error(
                        "several YAML documents in one file are not supported (split them into "
                        "files and pass each with -f)",
                        event.start_mark,
                    )

    # -- where the next value goes -------------------------------------------------------------

    def child_path(self, mark: Any) -> tuple[PathKey, bool]:
        """The path of the value about to be built; the bool says it is a mapping key."""
        if not self.stack:
            return (), False
        top = self.stack[-1]
        if top.kind == "seq":
            path = (*top.path, len(top.value))
            self.positions[path] = (mark.line + 1, mark.column + 1)
            return path, False
        if top.key is None:
            return top.path, True
        return (*top.path, top.key), False

    def place(self, value: Any, mark: Any, is_key: bool) -> None:
        if not self.stack:
            self.result = value
            return
        top = self.stack[-1]
        if top.kind == "seq":
            top.value.append(value)
            return
        if is_key:  # pragma: no cover - keys are handled in scalar()
            raise AssertionError
        key = top.key
        assert key is not None
        top.key = None
        if key == "<<":
            self.merge(top, value, mark)
            return
        top.value[key] = value

    def merge(self, top: _Frame, value: Any, mark: Any) -> None:
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                raise self.error(
                    "a '<<' merge key needs a mapping or a list of mappings", mark, top.path
                )
            top.merges.append(source)

    def depth_check(self, mark: Any, path: PathKey) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise self.error(f"nesting is deeper than {MAX_DEPTH} levels", mark)

    def count(self, n: int, mark: Any) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise self.error(f"document has more than {MAX_NODES} values", mark)

    # -- events --------------------------------------------------------------------------------

    def start(self, event: Any, kind: str, value: Any) -> None:
        mark: Any = event.start_mark
        self.depth_check(mark, ())
        if self.stack and self.stack[-1].kind == "map" and self.stack[-1].key is None:
            raise self.error("a mapping key must be a plain value, not a mapping or a list", mark)
        self.check_tag(event.tag, kind, mark)
        path, _ = self.child_path(mark)
        self.count(1, mark)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(kind, value, path, event.anchor, self.nodes))

    def end(self, event: Any) -> None:
        frame = self.stack.pop()
        value = frame.value
        if frame.kind == "map" and frame.merges:
            merged: dict[str, Any] = {}
            for source in frame.merges:
                for k, v in source.items():
                    merged.setdefault(k, v)
            for k, v in value.items():
                merged[k] = v
            # Keep the explicit keys' order first, as written; merged-in keys follow.
            value = {**value, **{k: v for k, v in merged.items() if k not in value}}
            frame.value = value
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (value, self.nodes - frame.nodes_at_start + 1)
        self.place(value, event.start_mark, False)

    def scalar(self, event: yaml.ScalarEvent) -> None:
        mark: Any = event.start_mark
        if self.stack and self.stack[-1].kind == "map" and self.stack[-1].key is None:
            self.key(event)
            return
        path, _ = self.child_path(mark)
        self.count(1, mark)
        value = self.resolve(event, path)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        self.place(value, mark, False)

    def key(self, event: yaml.ScalarEvent) -> None:
        top = self.stack[-1]
        mark: Any = event.start_mark
        if event.tag not in (None, "!", "tag:yaml.org,2002:str"):
            self.check_tag(event.tag, "scalar", mark)
        key = event.value
        if key == "<<" and event.implicit[0]:
            if "<<" in top.explicit:
                raise self.error("duplicate '<<' merge key", mark, top.path)
            top.explicit["<<"] = (mark.line + 1, mark.column + 1)
            top.key = "<<"
            return
        if key in top.explicit:
            first = top.explicit[key][0]
            raise self.error(
                f"duplicate key '{key}' (first defined on line {first})", mark, (*top.path, key)
            )
        top.explicit[key] = (mark.line + 1, mark.column + 1)
        self.count(1, mark)
        top.key = key
        self.positions[(*top.path, key)] = (mark.line + 1, mark.column + 1)
        if event.anchor is not None:
            self.anchors[event.anchor] = (key, 1)

    def alias(self, event: yaml.AliasEvent) -> None:
        mark: Any = event.start_mark
        name = event.anchor
        if name in self.open_anchors:
            raise self.error(f"recursive alias '*{name}' refers to a value that contains it", mark)
        if name not in self.anchors:
            raise self.error(f"unknown alias '*{name}'", mark)
        value, size = self.anchors[name]
        if self.stack and self.stack[-1].kind == "map" and self.stack[-1].key is None:
            if not isinstance(value, str):
                raise self.error(
                    "a mapping key must be a plain value, not a mapping or a list", mark
                )
            top = self.stack[-1]
            if value in top.explicit:
                raise self.error(f"duplicate key '{value}'", mark, (*top.path, value))
            top.explicit[value] = (mark.line + 1, mark.column + 1)
            top.key = value
            self.positions[(*top.path, value)] = (mark.line + 1, mark.column + 1)
            return
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise self.error(
                f"aliases expand to more than {MAX_ALIAS_NODES} values (an alias bomb?)", mark
            )
        self.count(size, mark)
        self.child_path(mark)
        self.place(value, mark, False)

    def check_tag(self, tag: str | None, kind: str, mark: Any) -> None:
        if tag is None or tag == "!":
            return
        if tag not in _CORE_TAGS:
            raise self.error(f"YAML tag '{tag}' is not supported", mark)
        expected = {"map": "tag:yaml.org,2002:map", "seq": "tag:yaml.org,2002:seq"}.get(kind)
        if expected and tag != expected:
            raise self.error(
                f"YAML tag '{tag}' cannot apply to a {'mapping' if kind == 'map' else 'list'}", mark
            )
        if kind == "scalar" and tag in ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
            raise self.error(f"YAML tag '{tag}' cannot apply to a plain value", mark)

    def resolve(self, event: yaml.ScalarEvent, path: PathKey) -> Any:
        text = event.value
        tag = event.tag
        mark: Any = event.start_mark
        if tag not in (None, "!"):
            self.check_tag(tag, "scalar", mark)
            return self.construct(text, tag, mark, path)
        if tag == "!" or not event.implicit[0]:  # quoted, or a block scalar
            return text
        if _NULL.match(text):
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _LEADING_ZERO.match(text):
            # "0440" or a zip code: YAML 1.1 says octal, 1.2 says decimal; keep the text so that
            # the field that reads it decides (a file mode parses it as octal).
            return text
        if _INT.match(text) or _OCT.match(text) or _HEX.match(text):
            return self.construct(text, "tag:yaml.org,2002:int", mark, path)
        if _FLOAT.match(text) or _INF.match(text) or _NAN.match(text):
            return self.construct(text, "tag:yaml.org,2002:float", mark, path)
        return text

    def construct(self, text: str, tag: str, mark: Any, path: PathKey) -> Any:
        kind = tag.rsplit(":", 1)[-1]
        if kind == "str":
            return text
        if kind == "null":
            if not _NULL.match(text):
                raise self.error(f"'{text}' is not a null value", mark, path)
            return None
        if kind == "bool":
            if text not in _BOOL:
                raise self.error(f"'{text}' is not true or false", mark, path)
            return _BOOL[text]
        if kind == "int":
            digits = text.lstrip("+-")
            if len(digits) > 40:
                raise self.error("number is too large", mark, path)
            try:
                if _OCT.match(text):
                    return int(text[2:], 8)
                if _HEX.match(text):
                    return int(text[2:], 16)
                return int(text, 10)
            except ValueError:
                raise self.error(f"'{text}' is not an integer", mark, path) from None
        # float
        if _INF.match(text):
            return -math.inf if text.startswith("-") else math.inf
        if _NAN.match(text):
            return math.nan
        if len(text) > 100:
            raise self.error("number is too long", mark, path)
        try:
            return float(text)
        except ValueError:
            raise self.error(f"'{text}' is not a number", mark, path) from None


def format_path(path: PathKey) -> str:
    """``("services", "web", "ports", 1)`` -> ``services.web.ports[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class Locator:
    """Where each path of a (possibly merged) stack was written, across files.

    Every later stage reports an error with ``locator.error(path, message)``, which finds the file,
    line and column of the path (or of its nearest written ancestor)."""

    def __init__(self, default_file: str | None = None) -> None:
        self.default_file = default_file
        self.positions: dict[PathKey, tuple[str, int, int]] = {}

    def add(self, doc: YamlDocument, prefix: PathKey = (), strip: PathKey = ()) -> None:
        """Record ``doc``'s positions; those under ``strip`` are moved under ``prefix``."""
        n = len(strip)
        for path, (line, column) in doc.positions.items():
            if path[:n] == strip:
                self.positions[prefix + path[n:]] = (doc.file, line, column)

    def copy_subtree(self, src: PathKey, dst: PathKey) -> None:
        """Positions of ``src`` also serve ``dst`` (for ``extends``), unless ``dst`` has its own."""
        n = len(src)
        for path, pos in list(self.positions.items()):
            if path[:n] == src:
                self.positions.setdefault(dst + path[n:], pos)

    def find(self, path: PathKey) -> tuple[str | None, int | None, int | None]:
        for end in range(len(path), -1, -1):
            pos = self.positions.get(path[:end])
            if pos is not None:
                return pos
        return self.default_file, None, None

    def error(self, path: PathKey, message: str) -> StackError:
        file, line, column = self.find(path)
        return StackError(
            message, file=file, line=line, column=column, path=format_path(path) or None
        )
