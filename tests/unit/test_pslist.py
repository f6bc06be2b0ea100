"""ps in Docker's terms: durations, statuses, commands and filters (orchestrator.pslist)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestrator.errors import UserError
from orchestrator.pslist import (
    Matcher,
    effective_command,
    human_duration,
    parse_filters,
    parse_time,
    row,
    status_text,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.3, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (300, "5 minutes"),
        (3600, "About an hour"),
        (3 * 3600, "3 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_is_dockers(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_statuses() -> None:
    now = parse_time("2026-12-05T10:00:00Z")
    assert now is not None
    running = {"state": "running", "started": "2026-12-05T09:55:00.5Z"}
    assert status_text(running, now) == "Up 4 minutes"
    assert status_text(dict(running, state="paused"), now) == "Up 4 minutes (Paused)"
    exited = {"state": "exited", "exit_code": 0, "finished": "2026-12-05T09:57:00Z"}
    assert status_text(exited, now) == "Exited (0) 3 minutes ago"
    assert status_text(dict(exited, exit_unknown="x"), now) == "Exited (unknown) 3 minutes ago"
    assert status_text({"state": "created"}, now) == "Created"


@dataclass
class FakeContainer:
    id: str
    name: str
    record: dict[str, Any] = field(default_factory=dict)


def test_effective_command_takes_the_images_when_none_was_given() -> None:
    image = {"config": {"Entrypoint": ["/entry"], "Cmd": ["serve", "--port", "80"]}}

    def config(_: str) -> dict[str, Any]:
        return image

    given = {"options": {"command": ["sh"], "entrypoint": None}}
    assert effective_command(given, config) == ["/entry", "sh"]
    assert effective_command({"options": {}}, config) == ["/entry", "serve", "--port", "80"]
    entry = {"options": {"entrypoint": ["top"], "command": None}}
    assert effective_command(entry, config) == ["top"]  # --entrypoint drops the image's CMD


def test_row_quotes_and_truncates_the_command_like_docker() -> None:
    now = parse_time("2026-12-05T10:00:00Z") or 0.0
    c = FakeContainer("ab" * 32, "web", {"image": "busybox", "options": {"labels": {"a": "1"}}})
    status = {"state": "created", "created": "2026-12-05T09:55:00Z"}
    long = ["sh", "-c", 'trap "exit 7" TERM; while :; do sleep 1; done']
    r = row(c, status, long, [], ["none"], trunc=True, now=now)
    assert r["Command"] == '"sh -c trap \\"exit 7\\"…"'
    assert r["ID"] == "ab" * 6
    assert r["RunningFor"] == "5 minutes ago"
    assert str(r["Labels"]) == "a=1"
    full = row(c, status, long, [], ["none"], trunc=False, now=now)
    assert full["ID"] == c.id and "done" in full["Command"]


def test_filters_or_within_a_key_and_across_keys() -> None:
    web = FakeContainer(
        "aaa1",
        "web",
        {
            "image": "busybox",
            "image_id": "sha256:1",
            "options": {"labels": {"tier": "front", "x": "1"}},
            "created": "1",
        },
    )
    db = FakeContainer(
        "bbb2",
        "db",
        {
            "image": "other",
            "image_id": "sha256:2",
            "options": {"labels": {"tier": "back"}},
            "created": "2",
        },
    )
    running = {"state": "running"}
    exited = {"state": "exited", "exit_code": 3}
    containers = {"web": web, "db": db}

    def matcher(*flags: str) -> Matcher:
        return Matcher(
            parse_filters(flags),
            lambda name: {"busybox": "sha256:1"}.get(name),
            lambda name: containers[name],
        )

    assert matcher("name=we", "name=db")(web, running) and matcher("name=we", "name=db")(
        db, running
    )
    assert not matcher("name=^eb")(web, running)
    assert not matcher("name=web", "status=exited")(web, running)
    assert matcher("status=running", "status=exited")(db, exited)
    assert matcher("id=aaa")(web, running) and not matcher("id=aaa")(db, running)
    assert matcher("label=tier")(db, running)
    assert not matcher("label=tier", "label=x")(db, running)  # every label filter must hold
    assert matcher("label=tier=front", "label=x=1")(web, running)
    assert matcher("ancestor=busybox")(web, running) and not matcher("ancestor=busybox")(
        db, running
    )
    assert matcher("ancestor=other")(db, running)  # not in the store: by name
    assert matcher("exited=3")(db, exited) and not matcher("exited=0")(db, exited)
    assert not matcher("exited=3")(db, running)
    assert matcher("before=db")(web, running) and not matcher("before=db")(db, running)
    assert matcher("since=web")(db, running) and not matcher("since=web")(web, running)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("colour=red", "invalid filter 'colour'"),
        ("status=sleeping", "invalid status 'sleeping'"),
        ("exited=x", "must be an integer"),
        ("name", "give key=value"),
        ("name=[", "bad pattern"),
    ],
)
def test_bad_filters_are_user_errors(flag: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_filters([flag])
