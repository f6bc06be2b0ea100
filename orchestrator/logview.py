"""What ``orchestrator logs`` shows of a container's log: ``--tail`` (a number, ``all``),
``--since`` and ``--until`` (RFC 3339 times, Unix timestamps, or durations before now such as
``10m``, as Docker takes them), and ``-f``: the selected lines, then what comes, with nothing
lost in between (the file being followed is opened before the past is read)."""

from __future__ import annotations

import calendar
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from runtime.logs import Entry, _parse, log_files

_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?", re.I
)


def parse_tail(value: str) -> int | None:
    """``--tail``: a count of lines, or ``all`` (None); a negative count is all, as Docker's."""
    if value.strip().lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        raise UserError(f"--tail {value}: give a number of lines or 'all'") from None
    return None if count < 0 else count


def parse_time(value: str, flag: str, now: float | None = None) -> float:
    """Seconds since the epoch for a ``--since``/``--until`` value."""
    from orchestrator.durations import DurationError, parse_duration

    text = value.strip()
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)  # a Unix timestamp
    match = _RFC3339.fullmatch(text)
    if match:
        day, clock, fraction, zone = match.groups()
        clock = clock or "00:00:00"
        if clock.count(":") == 1:
            clock += ":00"
        try:
            stamp = time.strptime(f"{day}T{clock}", "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise UserError(f"{flag} {value}: not a valid time") from None
        seconds = calendar.timegm(stamp) + (float(fraction) if fraction else 0.0)
        if zone is None:  # Docker reads a time without a zone as local time
            seconds = time.mktime(stamp) + (float(fraction) if fraction else 0.0)
        elif zone.upper() != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return seconds
    try:
        return now - parse_duration(text, flag) / 1e9
    except DurationError:
        raise UserError(
            f"{flag} {value}: give a time (2026-12-05T08:00:00Z), a Unix timestamp or a"
            " duration before now (10m, 1h30m)"
        ) from None


def entry_time(entry: Entry) -> float:
    from orchestrator.pslist import parse_time as stamp_time

    return stamp_time(entry.time) or 0.0


class Selection:
    """Which entries to show: times in [since, until], the last ``tail`` of them."""

    def __init__(
        self, tail: int | None = None, since: float | None = None, until: float | None = None
    ) -> None:
        self.tail = tail
        self.since = since
        self.until = until

    def wanted(self, entry: Entry) -> bool:
        if self.since is None and self.until is None:
            return True
        at = entry_time(entry)
        if self.since is not None and at < self.since:
            return False
        return self.until is None or at <= self.until

    def past(self, entries: list[Entry]) -> list[Entry]:
        chosen = [e for e in entries if self.wanted(e)]
        if self.tail is None:
            return chosen
        return chosen[len(chosen) - self.tail :] if self.tail else []


def read(path: Path, selection: Selection) -> list[Entry]:
    entries: list[Entry] = []
    for file in log_files(path):
        with open(file, "rb") as f:
            entries += _entries(f.read())[0]
    return selection.past(entries)


def _entries(data: bytes) -> tuple[list[Entry], bytes]:
    *lines, rest = data.split(b"\n")
    return [e for e in map(_parse, lines) if e], rest


def follow(
    path: Path, is_running: Callable[[], bool], selection: Selection, poll: float = 0.05
) -> Iterator[Entry]:
    """The selected past entries, then new ones until ``is_running()`` is false (or the
    ``until`` time has passed)."""
    current: Any = _open(path)
    past: list[Entry] = []
    buffer = b""
    for file in log_files(path)[:-1] if current is not None else log_files(path):
        with open(file, "rb") as f:
            past += _entries(f.read())[0]
    if current is not None:
        found, buffer = _entries(current.read())
        past += found
    yield from selection.past(past)
    try:
        while True:
            if selection.until is not None and time.time() > selection.until:
                return
            running = is_running()
            if current is None:
                current = _open(path)
            if current is not None:
                chunk = current.read()
                found, buffer = _entries(buffer + chunk)
                yield from (e for e in found if selection.wanted(e))
                if _rotated(path, current):  # continue in the new file, from its start
                    found, _ = _entries(buffer + current.read() + b"\n")
                    yield from (e for e in found if selection.wanted(e))
                    current.close()
                    current, buffer = _open(path), b""
                    continue
                if chunk:
                    continue
            if not running:
                return
            time.sleep(poll)
    finally:
        if current is not None:
            current.close()


def _open(path: Path) -> Any:
    try:
        return open(path, "rb")  # (kept open while following)
    except FileNotFoundError:
        return None


def _rotated(path: Path, current: Any) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(current.fileno()).st_ino
    except FileNotFoundError:
        return False
