"""Durations as Go writes them (``1m30s``, ``1.5s``, ``250ms``), in integer nanoseconds.

    parse_duration("1m30s", "interval")     # -> 90_000_000_000
    format_duration(1_500_000)              # -> "1.5ms"

One parser for every duration a user writes: stack files (healthchecks, ``stop_grace_period``,
restart delays) and Dockerfile ``HEALTHCHECK`` flags. The grammar is Go's ``time.ParseDuration``,
which Compose and Docker both use: one or more decimal numbers, each with an optional fraction
(``1.5``, ``.5``, ``1.``) and a unit among ``ns``, ``us`` (or ``µs``, ``μs``), ``ms``, ``s``,
``m``, ``h``; a bare ``0`` needs no unit. Unlike Go, a sign is refused: nothing here may be
negative. Surrounding whitespace is ignored, the number ``0`` (from YAML) is zero, any other bare
number is refused for want of a unit, and the text is at most 64 characters, so every check is
quick. The sum is exact (no floating point) and truncated to whole nanoseconds once, at the end.

Errors are :class:`DurationError` (a ``ValueError``), whose message names what was being parsed
and the value given.
"""

from __future__ import annotations

import re
from typing import Any

MAX_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds
MAX_TEXT = 64

_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU; Go accepts both
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


class DurationError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_duration(value: Any, what: str = "duration") -> int:
    """Nanoseconds from ``"1m30s"``, ``"1.5s"``, ``"250ms"``, ``"1h"``, ``"0"`` or ``0``.

    ``what`` (a key such as ``interval``, or a flag such as ``--interval``) starts every error
    message."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == 0:
            return 0
        raise DurationError(f"{what} {value!r} needs a unit, such as '{value}s'")
    if not isinstance(value, str):
        raise DurationError(f"{what} must be a string or a number")
    text = value.strip()
    if len(text) > MAX_TEXT:
        raise DurationError(f"{what} is too long (at most {MAX_TEXT} characters)")
    if not text:
        raise DurationError(f"{what} is empty")
    if text.startswith("-"):
        raise DurationError(f"{what} {text!r} cannot be negative")
    if text == "0":
        return 0
    # The exact sum is numerator / scale, scale a power of ten as long as the longest fraction.
    numerator, scale = 0, 1
    pos = 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m or (not m.group(1) and not m.group(2)):
            raise DurationError(
                f"{what} {text!r} is not a duration: use numbers with h, m, s, ms, us or ns "
                "(such as '1m30s')"
            )
        whole, fraction = m.group(1) or "0", m.group(2) or ""
        part_scale = 10 ** len(fraction)
        part = (int(whole) * part_scale + int(fraction or "0")) * _UNIT_NS[m.group(3)]
        if part_scale > scale:
            numerator *= part_scale // scale
            scale = part_scale
        numerator += part * (scale // part_scale)
        pos = m.end()
    result = numerator // scale
    if result > MAX_NS:
        raise DurationError(f"{what} {text!r} is too long (at most about 292 years)")
    return result


def format_duration(ns: int) -> str:
    """Go's spelling of a duration: ``90_000_000_000`` -> ``"1m30s"``, ``1_500_000`` -> ``"1.5ms"``."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def _fraction(n: int, size: int) -> str:
    whole, frac = divmod(n, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}.{str(frac).zfill(digits).rstrip('0')}"
