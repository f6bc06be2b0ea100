"""Container logs: JSON lines (Docker's json-file format), rotated by size.

Each line is ``{"log": "text\\n", "stream": "stdout", "time": "2026-11-28T17:00:00.123456789Z"}``.
The monitor writes them; ``read`` and ``follow`` give them back across rotated files
(``container.log.2``, ``container.log.1``, ``container.log``: oldest first).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 3
MAX_LINE = 16 * 1024  # a longer line is split, as Docker does


def timestamp(now: float | None = None) -> str:
    ns = time.time_ns() if now is None else int(now * 1e9)
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


class LogWriter:
    def __init__(
        self, path: str, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES
    ):
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buffered = self.partial.pop(stream, b"") + data
        lines = buffered.split(b"\n")
        rest = lines.pop()
        for line in lines:
            self._emit(stream, line + b"\n")
        while len(rest) >= MAX_LINE:
            self._emit(stream, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self.partial[stream] = rest

    def flush(self) -> None:
        """Write out partial lines (at the end of the container)."""
        for stream, rest in list(self.partial.items()):
            self._emit(stream, rest)
        self.partial.clear()

    def _emit(self, stream: str, line: bytes) -> None:
        record = json.dumps(
            {"log": line.decode("utf-8", "replace"), "stream": stream, "time": timestamp()}
        )
        data = record.encode() + b"\n"
        if self.size and self.size + len(data) > self.max_size:
            self._rotate()
        os.write(self.fd, data)
        self.size += len(data)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i}")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = 0

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


@dataclass(frozen=True)
class Entry:
    stream: str
    time: str
    text: str


def _parse(line: bytes) -> Entry | None:
    try:
        record = json.loads(line)
        return Entry(record["stream"], record["time"], record["log"])
    except (ValueError, KeyError, TypeError):
        return None


class Tail:
    """Follows one log file as it grows: ``read_new()`` gives the entries written since the
    last call (from ``offset`` at first). For a live view while a container runs."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.file: Any = None
        self.buffer = b""

    def read_new(self) -> list[Entry]:
        if self.file is None:
            try:
                self.file = open(self.path, "rb")  # noqa: SIM115 - kept open while following
            except FileNotFoundError:
                return []
            self.file.seek(self.offset)
        self.buffer += self.file.read()
        *lines, self.buffer = self.buffer.split(b"\n")
        return [entry for entry in map(_parse, lines) if entry]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def log_files(path: Path) -> list[Path]:
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, path] if path.exists() else rotated


def read(path: Path, tail: int | None = None) -> list[Entry]:
    entries: list[Entry] = []
    for file in log_files(path):
        with open(file, "rb") as f:
            for line in f:
                entry = _parse(line)
                if entry:
                    entries.append(entry)
    return entries[-tail:] if tail is not None else entries


def follow(path: Path, is_running: Callable[[], bool], poll: float = 0.05) -> Iterator[Entry]:
    """Everything logged so far, then new lines until ``is_running()`` is false."""
    yield from read(path)
    check = is_running
    f = open(path, "rb") if path.exists() else None  # noqa: SIM115
    if f:
        f.seek(0, os.SEEK_END)
    inode = os.fstat(f.fileno()).st_ino if f else None
    buffer = b""
    try:
        while True:
            running = check()
            if f is None and path.exists():
                f = open(path, "rb")  # noqa: SIM115
                inode = os.fstat(f.fileno()).st_ino
            if f is not None:
                chunk = f.read()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    entry = _parse(line)
                    if entry:
                        yield entry
                try:
                    if os.stat(path).st_ino != inode:  # rotated: continue in the new file
                        f.close()
                        f = open(path, "rb")  # noqa: SIM115
                        inode = os.fstat(f.fileno()).st_ino
                        continue
                except FileNotFoundError:
                    pass
                if chunk:
                    continue
            if not running:
                return
            time.sleep(poll)
    finally:
        if f:
            f.close()
