"""What ``orchestrator logs`` shows of a container's log: ``--tail`` (a number, ``all``),
``--since`` and ``--until`` (RFC 3339 times, Unix timestamps, or durations before now such as
``10m``, as Docker takes them), and ``-f``: the selected lines, then what comes, with nothing
lost in between (the file being followed is opened before the past is read)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.timespec import from_record
from runtime.logs import Entry, _parse, log_files


def parse_tail(value: str) -> int | None:
    """``--tail``: a count of lines, or ``all`` (None); a negative count is all, as Docker's."""
    if value.strip().lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        raise UserError(f"--tail {value}: give a number of lines or 'all'") from None
    return None if count < 0 else count


def entry_time(entry: Entry) -> float:
    return from_record(entry.time) or 0.0


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
