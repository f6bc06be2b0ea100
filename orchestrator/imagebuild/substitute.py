"""Variable substitution and quote removal in Dockerfile words, as Docker's shell lexer does.

    expand("${NAME:-world}", {})                 # "world"
    expand_words('a "b c" $X', {"X": "1 2"})     # ["a", "b c", "1", "2"]

Supported: ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``,
``${VAR+word}``, ``${VAR:?message}``, ``${VAR?message}``; single quotes (literal), double quotes
(substitution inside; the escape character escapes ``"``, ``$`` and itself), and the escape
character outside quotes (the next character is literal). An unset variable expands to nothing.
RUN, CMD and ENTRYPOINT are never substituted here: their shell does it.
"""

from __future__ import annotations

from collections.abc import Mapping


class SubstitutionError(ValueError):
    """A word cannot be expanded (unterminated quote or brace, ``${X:?}`` on an unset X...)."""


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, variables substituted, never split."""
    return _Lexer(word, env, escape, split=False).run()[0] if word else ""


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Words split on unquoted whitespace (also inside unquoted expansions), then expanded."""
    return _Lexer(text, env, escape, split=True).run()


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, *, split: bool) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.split = split
        self.pos = 0
        self.words: list[str] = []
        self.current: list[str] = []
        self.started = False  # a word exists even if empty ("" is a word)

    def run(self) -> list[str]:
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == self.escape:
                if self.pos + 1 < len(text):
                    self._add(text[self.pos + 1])
                    self.pos += 2
                else:
                    self._add(c)
                    self.pos += 1
            elif c == "'":
                self._single()
            elif c == '"':
                self._double()
            elif c == "$":
                self.pos += 1
                value = self._variable()
                if self.split:
                    self._add_split(value)
                else:
                    self._add(value)
            elif self.split and c.isspace():
                self._end_word()
                self.pos += 1
            else:
                self._add(c)
                self.pos += 1
        self._end_word()
        if not self.split and not self.words:
            return [""]
        return self.words

    def _add(self, s: str) -> None:
        self.current.append(s)
        self.started = True

    def _add_split(self, value: str) -> None:
        parts = value.split()
        if not parts:
            return
        if value[:1].isspace():
            self._end_word()
        for i, part in enumerate(parts):
            if i:
                self._end_word()
            self._add(part)
        if value[-1:].isspace():
            self._end_word()

    def _end_word(self) -> None:
        if self.started:
            self.words.append("".join(self.current))
        self.current = []
        self.started = False

    def _single(self) -> None:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise SubstitutionError("unexpected end of text while looking for matching '")
        self._add(self.text[self.pos + 1 : end])
        self.pos = end + 1

    def _double(self) -> None:
        text = self.text
        self.pos += 1
        self.started = True
        while self.pos < len(text):
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return
            if c == self.escape and self.pos + 1 < len(text):
                nxt = text[self.pos + 1]
                if nxt in ('"', "$", self.escape):
                    self._add(nxt)
                else:
                    self._add(c + nxt)
                self.pos += 2
            elif c == "$":
                self.pos += 1
                self._add(self._variable())
            else:
                self._add(c)
                self.pos += 1
        raise SubstitutionError('unexpected end of text while looking for matching "')

    def _variable(self) -> str:
        """After a ``$``: the value of the variable that follows, or ``$`` itself."""
        text = self.text
        if self.pos >= len(text):
            return "$"
        c = text[self.pos]
        if c == "{":
            return self._braced()
        if c.isdigit():
            self.pos += 1
            return ""  # positional parameters are always empty here
        start = self.pos
        while self.pos < len(text) and (text[self.pos].isalnum() or text[self.pos] == "_"):
            self.pos += 1
        name = text[start : self.pos]
        if not name:
            return "$"
        return self.env.get(name, "")

    def _braced(self) -> str:
        text = self.text
        self.pos += 1
        start = self.pos
        while self.pos < len(text) and (text[self.pos].isalnum() or text[self.pos] == "_"):
            self.pos += 1
        name = text[start : self.pos]
        if self.pos >= len(text):
            raise SubstitutionError("missing '}' in a ${...} substitution")
        if not name:
            raise SubstitutionError(f"bad substitution: {text[start - 2 :]!r}")
        if text[self.pos] == "}":
            self.pos += 1
            return self.env.get(name, "")
        colon = text[self.pos] == ":"
        if colon:
            self.pos += 1
        if self.pos >= len(text) or text[self.pos] not in "-+?":
            raise SubstitutionError(f"unsupported modifier in ${{{name}...}}")
        op = text[self.pos]
        self.pos += 1
        raw = self._until_brace()
        word = expand(raw, self.env, self.escape) if raw else ""
        value = self.env.get(name)
        empty = value is None or (colon and value == "")
        if op == "-":
            return word if empty else str(value)
        if op == "+":
            return "" if empty else word
        if empty:
            raise SubstitutionError(f"{name}: {word or 'is not set'}")
        return str(value)

    def _until_brace(self) -> str:
        """The raw word of a modifier, up to its matching ``}`` (nested braces and escapes)."""
        text = self.text
        depth = 0
        start = self.pos
        while self.pos < len(text):
            c = text[self.pos]
            if c == self.escape and self.pos + 1 < len(text):
                self.pos += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    raw = text[start : self.pos]
                    self.pos += 1
                    return raw
                depth -= 1
            self.pos += 1
        raise SubstitutionError("missing '}' in a ${...} substitution")
