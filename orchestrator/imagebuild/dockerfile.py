"""The Dockerfile parser: text to stages of instructions, each with its line number.

    df = parse(Path("Dockerfile").read_text(), "Dockerfile")
    for stage in df.stages:
        print(stage.index, stage.name, stage.base)
        for inst in stage.instructions:
            print(inst.line, inst.keyword, inst.flags, inst.args, inst.exec_form)

Follows Docker's rules: parser directives (``# escape=`` and ``# syntax=``, the latter ignored)
only at the very top; ``#`` starts a comment only at the start of a line; a line ending with the
escape character continues on the next (comment and empty lines inside are dropped, leading
whitespace of continuation lines kept); keywords are case-insensitive; RUN, CMD, ENTRYPOINT,
SHELL, COPY, ADD and VOLUME accept a JSON array (exec form). Nothing is substituted here: the
builder expands variables when it runs each instruction, with the environment of that moment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from orchestrator.errors import UserError

KEYWORDS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
# The flags each instruction accepts (``True``: takes a value).
FLAGS: dict[str, dict[str, bool]] = {
    "FROM": {"platform": True},
    "COPY": {"from": True, "chown": True, "chmod": True, "link": False},
    "ADD": {"chown": True, "chmod": True, "link": False, "checksum": True},
    "RUN": {"network": True, "mount": True, "security": True},
    "HEALTHCHECK": {
        "interval": True,
        "timeout": True,
        "start-period": True,
        "start-interval": True,
        "retries": True,
    },
}
EXEC_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
NEEDS_ARGS = KEYWORDS - {"HEALTHCHECK"}
MAX_DOCKERFILE = 4 << 20

_DIRECTIVE_RE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*")
_STAGE_NAME_RE = re.compile(r"[a-z][a-z0-9\-_.]*")


class DockerfileError(UserError):
    """``FILE:LINE: INSTRUCTION: message``, one line."""

    def __init__(
        self, message: str, *, file: str, line: int | None = None, instruction: str = ""
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.instruction = instruction

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        what = f"{self.instruction}: " if self.instruction else ""
        return f"{where}: {what}{self.message}"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # the arguments after the flags, continuation lines joined, unexpanded
    line: int  # first line of the instruction (1-based)
    flags: dict[str, str | None] = field(default_factory=dict)
    exec_form: list[str] | None = None  # the JSON array, when written in exec form
    original: str = ""  # the instruction as written (continuations joined)

    def describe(self) -> str:
        """What error messages and the build output show: ``RUN echo hi``."""
        text = self.original if len(self.original) <= 80 else self.original[:77] + "..."
        return text


@dataclass
class Stage:
    index: int
    base: str  # the FROM argument, unexpanded
    name: str | None  # ``AS name`` (lower case)
    from_line: int
    platform: str | None = None
    instructions: list[Instruction] = field(default_factory=list)
    from_instruction: Instruction | None = None

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclass
class Dockerfile:
    path: str
    escape: str = "\\"
    global_args: list[Instruction] = field(default_factory=list)  # ARGs before the first FROM
    stages: list[Stage] = field(default_factory=list)

    def stage(self, name_or_index: str) -> Stage | None:
        """A stage by ``AS`` name (case-insensitive) or by index."""
        lowered = name_or_index.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        if name_or_index.isdigit():
            index = int(name_or_index)
            if index < len(self.stages):
                return self.stages[index]
        return None


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; raises ``DockerfileError`` naming the file and line."""
    if len(text) > MAX_DOCKERFILE:
        raise DockerfileError(f"larger than {MAX_DOCKERFILE} bytes", file=path)
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    df = Dockerfile(path)
    start = _directives(lines, df)
    logical = _logical_lines(lines, start, df.escape)
    if not logical:
        raise DockerfileError("the Dockerfile has no instructions", file=path)
    for line_no, content in logical:
        inst = _instruction(line_no, content, df)
        if inst.keyword == "FROM":
            df.stages.append(_stage(inst, len(df.stages), df))
        elif not df.stages:
            if inst.keyword != "ARG":
                raise DockerfileError(
                    "no FROM before this instruction (only ARG may come first)",
                    file=path,
                    line=line_no,
                    instruction=inst.keyword,
                )
            df.global_args.append(inst)
        else:
            df.stages[-1].instructions.append(inst)
    if not df.stages:
        raise DockerfileError("no FROM instruction", file=path, line=logical[-1][0])
    return df


def _directives(lines: list[str], df: Dockerfile) -> int:
    """Parser directives at the top; returns the index of the first line after them."""
    seen: set[str] = set()
    for i, line in enumerate(lines):
        match = _DIRECTIVE_RE.fullmatch(line)
        if not match:
            return i
        key, value = match.group(1).lower(), match.group(2)
        if key not in ("escape", "syntax", "check"):
            return i  # an unknown directive is a comment, and ends the directives
        if key in seen:
            raise DockerfileError(
                f"only one {key} parser directive can be used", file=df.path, line=i + 1
            )
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(
                    f"invalid escape character {value!r}: use \\ or `", file=df.path, line=i + 1
                )
            df.escape = value
    return len(lines)


def _logical_lines(lines: list[str], start: int, escape: str) -> list[tuple[int, str]]:
    """(first line number, joined text) of each instruction."""
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    out: list[tuple[int, str]] = []
    pending: list[str] | None = None
    first = 0
    for i in range(start, len(lines)):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith("#"):
            continue  # a comment, also inside a continued instruction
        if pending is None:
            if not stripped:
                continue
            first = i + 1
            line = stripped
            pending = []
        elif not stripped:
            continue  # empty lines inside a continuation are dropped (as Docker does)
        match = continuation.search(line)
        if match:
            pending.append(line[: match.start()])
            continue
        pending.append(line)
        out.append((first, "".join(pending)))
        pending = None
    if pending is not None:
        joined = "".join(pending)
        if joined.strip():
            out.append((first, joined))
    return out


def _instruction(line_no: int, content: str, df: Dockerfile) -> Instruction:
    content = content.strip()
    keyword, _, rest = content.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = more + " " + rest
    upper = keyword.upper()
    if upper not in KEYWORDS:
        raise DockerfileError(
            f"unknown instruction {keyword!r}", file=df.path, line=line_no, instruction=keyword
        )
    rest = rest.strip()
    flags: dict[str, str | None] = {}
    allowed = FLAGS.get(upper, {})
    while rest.startswith("--"):
        word, _, after = _split_first(rest)
        name, eq, value = word[2:].partition("=")
        if name not in allowed:
            raise DockerfileError(
                f"unknown flag --{name}", file=df.path, line=line_no, instruction=upper
            )
        if allowed[name] and not eq:
            raise DockerfileError(
                f"--{name} needs a value (--{name}=VALUE)",
                file=df.path,
                line=line_no,
                instruction=upper,
            )
        if name in flags:
            raise DockerfileError(
                f"--{name} given twice", file=df.path, line=line_no, instruction=upper
            )
        flags[name] = value if eq else None
        rest = after
    exec_form = None
    if upper in EXEC_FORM and rest.startswith("["):
        exec_form = _json_list(rest)
    if upper in NEEDS_ARGS and not rest:
        raise DockerfileError(
            f"{upper} needs at least one argument", file=df.path, line=line_no, instruction=upper
        )
    if upper == "SHELL" and exec_form is None:
        raise DockerfileError(
            'SHELL needs the JSON form: SHELL ["executable", "parameters"]',
            file=df.path,
            line=line_no,
            instruction=upper,
        )
    if exec_form is not None and upper in ("SHELL", "COPY", "ADD") and not exec_form:
        raise DockerfileError(
            f"{upper} needs at least one argument", file=df.path, line=line_no, instruction=upper
        )
    return Instruction(upper, rest, line_no, flags, exec_form, content)


def _split_first(text: str) -> tuple[str, str, str]:
    parts = text.split(None, 1)
    return parts[0], " ", parts[1] if len(parts) > 1 else ""


def _json_list(text: str) -> list[str] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _stage(inst: Instruction, index: int, df: Dockerfile) -> Stage:
    words = inst.args.split()
    name = None
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME_RE.fullmatch(name):
            raise DockerfileError(
                f"invalid stage name {words[2]!r}: use letters, digits, '-', '_' and '.', "
                "starting with a letter",
                file=df.path,
                line=inst.line,
                instruction="FROM",
            )
        if any(s.name == name for s in df.stages):
            raise DockerfileError(
                f"duplicate stage name {name!r}", file=df.path, line=inst.line, instruction="FROM"
            )
    elif len(words) != 1:
        raise DockerfileError(
            "expected FROM IMAGE [AS NAME]", file=df.path, line=inst.line, instruction="FROM"
        )
    platform = inst.flags.get("platform")
    return Stage(index, words[0], name, inst.line, platform, [], inst)


def split_key_values(text: str, escape: str) -> list[tuple[str, str]] | None:
    """ENV and LABEL arguments as (key, raw value) pairs, quotes kept for the lexer.

    ``NAME=VALUE ...`` pairs, or the legacy ``NAME VALUE`` (everything after the first word is
    the value). Returns None when a pair has no ``=`` (the caller reports it).
    """
    words = _raw_words(text, escape)
    if not words:
        return None
    if "=" not in words[0]:
        if len(words) < 2:
            return None
        value = text.strip()[len(words[0]) :].strip()
        return [(words[0], value)]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            return None
        pairs.append((key, value))
    return pairs


def _raw_words(text: str, escape: str) -> list[str]:
    """Split on whitespace outside quotes, keeping quotes and escapes in the words."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == escape and i + 1 < len(text) and quote != "'":
            current.append(c + text[i + 1])
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
            current.append(c)
        elif c in "'\"":
            quote = c
            current.append(c)
        elif c.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(c)
        i += 1
    if current:
        words.append("".join(current))
    return words
