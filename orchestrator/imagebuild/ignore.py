""".dockerignore: which context paths a build may read, with Docker's pattern rules.

    rules = IgnoreRules.parse(Path(".dockerignore").read_text())
    rules.excluded("build/out.o")     # True
    rules.excluded("docs/keep.md")    # False with "docs" then "!docs/keep.md"

Each line is a pattern (``#`` lines and blank lines skipped); surrounding whitespace is trimmed;
the pattern is cleaned like Go's ``filepath.Clean`` (so ``./a/`` is ``a`` and a leading ``/`` is
dropped). ``*`` matches within one path component, ``?`` one character of it, ``[...]`` a class,
``**`` any number of components (``**/`` included), ``\\`` escapes the next character. A pattern
excludes a path when it matches the path or any of its parent directories; ``!pattern`` brings
matching paths back; the last matching pattern decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str  # the cleaned pattern, without "!"
    exclusion: bool  # a "!" line: matching paths are included again
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None


def clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash-separated paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression Docker's pattern matcher builds for a cleaned pattern."""
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 < n:
                out.append(re.escape(pattern[i + 1]))
                i += 1
            else:
                out.append(re.escape("\\"))
        elif c == "[":
            end = _class_end(pattern, i)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


def _class_end(pattern: str, start: int) -> int:
    i = start + 1
    if i < len(pattern) and pattern[i] in "^!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "]":
            return i
        i += 1
    return -1


class IgnoreRules:
    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self.has_exclusions = any(p.exclusion for p in patterns)

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        patterns: list[Pattern] = []
        for raw in text.removeprefix("\ufeff").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            if not line:
                continue
            cleaned = clean(line)
            if len(cleaned) > 1 and cleaned.startswith("/"):
                cleaned = cleaned[1:]
            patterns.append(Pattern(cleaned, exclusion, compile_pattern(cleaned)))
        return cls(patterns)

    def excluded(self, path: str) -> bool:
        """Whether the context-relative ``path`` (``a/b/c``) is left out of the build."""
        path = clean(path)
        parent = path.rpartition("/")[0]
        parents = []
        if parent:
            parts = parent.split("/")
            parents = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # cannot change the outcome
            hit = pattern.matches(path) or any(pattern.matches(p) for p in parents)
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_include_below(self, directory: str) -> bool:
        """Whether something under an excluded ``directory`` could still be included (an
        exception pattern exists): then the walk must go on into it."""
        return self.has_exclusions
