"""logs --tail/--since/--until (orchestrator.logview)."""

from __future__ import annotations

import calendar
import json
import threading
import time
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.logview import Selection, follow, parse_tail, read
from orchestrator.timespec import parse_time


def test_tail_values() -> None:
    assert parse_tail("all") is None
    assert parse_tail("3") == 3
    assert parse_tail("0") == 0
    assert parse_tail("-1") is None
    with pytest.raises(UserError, match="--tail x"):
        parse_tail("x")


def test_times_as_docker_takes_them() -> None:
    base = calendar.timegm((2026, 12, 5, 8, 0, 0, 0, 0, 0))
    assert parse_time("2026-12-05T08:00:00Z", "--since") == base
    assert parse_time("2026-12-05T08:00:00.5Z", "--since") == base + 0.5
    assert parse_time("2026-12-05T09:00:00+01:00", "--since") == base
    assert parse_time("1700000000", "--since") == 1700000000
    assert parse_time("10m", "--since", now=1000.0) == 400.0
    assert parse_time("1h30m", "--until", now=10000.0) == 10000.0 - 5400
    with pytest.raises(UserError, match="--since yesterday"):
        parse_time("yesterday", "--since")


def _write(path: Path, lines: list[tuple[str, str]]) -> None:
    with open(path, "a") as f:
        for stamp, text in lines:
            f.write(json.dumps({"log": text + "\n", "stream": "stdout", "time": stamp}) + "\n")


LINES = [(f"2026-12-05T08:00:0{i}.000000000Z", str(i)) for i in range(6)]


def test_read_selects_by_time_then_tail(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    _write(log.with_name("container.log.1"), LINES[:3])  # rotated: the older half
    _write(log, LINES[3:])

    def texts(selection: Selection) -> list[str]:
        return [e.text.strip() for e in read(log, selection)]

    assert texts(Selection()) == ["0", "1", "2", "3", "4", "5"]
    assert texts(Selection(tail=2)) == ["4", "5"]
    assert texts(Selection(tail=0)) == []
    since = parse_time("2026-12-05T08:00:02Z", "--since")
    until = parse_time("2026-12-05T08:00:04Z", "--until")
    assert texts(Selection(since=since)) == ["2", "3", "4", "5"]
    assert texts(Selection(since=since, until=until)) == ["2", "3", "4"]
    assert texts(Selection(tail=1, until=until)) == ["4"]


def test_follow_gives_the_tail_then_what_comes(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    _write(log, LINES[:4])
    running = threading.Event()
    running.set()

    def later() -> None:
        time.sleep(0.2)
        _write(log, LINES[4:])
        time.sleep(0.2)
        running.clear()

    threading.Thread(target=later).start()
    got = [e.text.strip() for e in follow(log, running.is_set, Selection(tail=1), poll=0.01)]
    assert got == ["3", "4", "5"]
    running.set()
    got = [e.text.strip() for e in follow(log, lambda: False, Selection(tail=0))]
    assert got == []
