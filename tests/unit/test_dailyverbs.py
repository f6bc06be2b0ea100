"""The pure parts of the everyday verbs: the event log (rotation, history, follow, filters,
one ``die`` per run), times for --since/--until, detach keys, cp's rules and its refusal of
hostile archives on the host's side, sizes, templates."""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator import eventlog
from orchestrator.attaching import KeyMatcher, parse_keys
from orchestrator.commands.dailyverbs import _split, docker_event, fill_template
from orchestrator.containercopy import CopyError, inspect_source, pack, unpack
from orchestrator.diskusage import human_size, tree_size
from orchestrator.errors import UserError
from orchestrator.timespec import from_record, parse_time


class _Container:
    def __init__(self, cid: str = "a" * 64, name: str = "web") -> None:
        self.id = cid
        self.name = name
        self.record: dict[str, Any] = {"image": "busybox", "options": {"labels": {"tier": "x"}}}


# -- event log -----------------------------------------------------------------------------------


def test_events_are_kept_in_order_and_read_back_by_time(tmp_path: Path) -> None:
    eventlog.record(tmp_path, "create", "a" * 64, "web", "busybox", now=100.0)
    eventlog.record(tmp_path, "start", "a" * 64, "web", "busybox", now=200.0)
    eventlog.record(tmp_path, "stop", "a" * 64, "web", "busybox", now=300.0)
    assert [e["action"] for e in eventlog.history(tmp_path)] == ["create", "start", "stop"]
    assert [e["action"] for e in eventlog.history(tmp_path, 150, 250)] == ["start"]
    assert [e["action"] for e in eventlog.history(tmp_path, since=200)] == ["start", "stop"]


def test_the_log_rotates_by_size_and_history_spans_both_files(tmp_path: Path) -> None:
    for i in range(50):
        eventlog.record(
            tmp_path, "start", f"{i:064d}", f"c{i}", "busybox", now=float(i), max_size=2000
        )
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("events.log"))
    assert "events.log.1" in files
    assert (tmp_path / "events.log").stat().st_size < 2000 + 400
    names = [e["name"] for e in eventlog.history(tmp_path)]
    assert names == sorted(names, key=lambda n: int(n[1:]))  # oldest first, none twice
    assert names[-1] == "c49" and len(names) < 50  # the oldest were dropped


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    eventlog.record(tmp_path, "create", "a" * 64, "web", "busybox", now=1.0)
    with open(tmp_path / "events.log", "ab") as f:
        f.write(b'{"time": 2, "act')
    eventlog.record(tmp_path, "start", "a" * 64, "web", "busybox", now=3.0)
    assert [e["action"] for e in eventlog.history(tmp_path)] == ["create", "start"]


def test_a_death_is_recorded_once_whoever_reports_it(tmp_path: Path) -> None:
    c = _Container()
    exit_record = {"exit_code": 3, "finished": "2026-12-05T08:00:00.000000001Z"}
    eventlog.died(tmp_path, c, exit_record)
    eventlog.died(tmp_path, c, dict(exit_record))
    eventlog.died(tmp_path, c, {"exit_code": 0, "finished": "2026-12-05T09:00:00.000000001Z"})
    deaths = [e for e in eventlog.history(tmp_path) if e["action"] == "die"]
    assert [d["attributes"]["exitCode"] for d in deaths] == ["3", "0"]
    assert deaths[0]["attributes"]["tier"] == "x"  # labels travel as attributes, as Docker's


def test_follow_gives_new_events_and_survives_a_rotation(tmp_path: Path) -> None:
    seen: list[str] = []
    stop_at = time.time() + 3

    def reader() -> None:
        for event in eventlog.follow(tmp_path, until=stop_at, interval=0.01):
            seen.append(event["name"])
            if len(seen) == 3:
                return

    eventlog.record(tmp_path, "create", "0" * 64, "old", "busybox")  # before: not followed
    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.2)
    eventlog.record(tmp_path, "start", "1" * 64, "n1", "busybox")
    time.sleep(0.1)
    eventlog.record(tmp_path, "start", "2" * 64, "n2", "busybox", max_size=1)  # rotates first
    time.sleep(0.1)
    eventlog.record(tmp_path, "start", "3" * 64, "n3", "busybox")
    thread.join(5)
    assert seen == ["n1", "n2", "n3"]


def test_filters_follow_dockers_rules() -> None:
    event = eventlog.record(Path("/nonexistent"), "die", "abc" + "0" * 61, "web", "busybox:1")
    event["attributes"] = {"tier": "x"}
    f = eventlog.parse_filters
    assert eventlog.matches(event, f(["container=web"]))
    assert eventlog.matches(event, f(["container=abc0"]))
    assert eventlog.matches(event, f(["event=stop", "event=die"]))  # one key: alternatives
    assert not eventlog.matches(event, f(["event=die", "container=db"]))  # keys: all must
    assert eventlog.matches(event, f(["image=busybox"]))
    assert eventlog.matches(event, f(["label=tier", "type=container"]))
    assert eventlog.matches(event, f(["label=tier=x"]))
    assert not eventlog.matches(event, f(["label=tier=y"]))
    with pytest.raises(UserError, match="--filter 'colour=red'"):
        f(["colour=red"])


def test_docker_shaped_json_and_templates() -> None:
    event = eventlog.record(Path("/nonexistent"), "start", "a" * 64, "web", "busybox", now=5.5)
    shaped = docker_event(event)
    assert shaped["Action"] == "start" and shaped["Actor"]["Attributes"]["name"] == "web"
    assert shaped["time"] == 5 and shaped["timeNano"] == 5_500_000_000
    assert fill_template("{{.Action}} {{.Actor.Attributes.name}}", shaped) == "start web"
    assert fill_template("{{json .Actor.Attributes}}", shaped) == '{"image":"busybox","name":"web"}'
    with pytest.raises(UserError, match="Nope"):
        fill_template("{{.Nope}}", shaped)
    line = eventlog.render(event)
    assert line.startswith("1970-01-01T00:00:05.500000000Z container start " + "a" * 64)
    assert line.endswith("(image=busybox, name=web)")


# -- times, keys, sizes --------------------------------------------------------------------------


def test_times_as_docker_takes_them() -> None:
    assert parse_time("1733390000", "--since") == 1733390000.0
    assert parse_time("10m", "--since", now=1000.0) == 400.0
    assert parse_time("1h30m", "--until", now=10000.0) == 4600.0
    assert parse_time("2026-12-05T08:00:00Z", "--since") == 1796457600.0
    assert parse_time("2026-12-05T09:00:00+01:00", "--since") == 1796457600.0
    with pytest.raises(UserError, match="--since yesterday"):
        parse_time("yesterday", "--since")
    assert from_record("2026-12-05T08:00:00.500000000Z") == 1796457600.5
    assert from_record(None) is None and from_record("garbage") is None


def test_detach_keys() -> None:
    assert parse_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(UserError, match="--detach-keys"):
        parse_keys("ctrl-pp")
    m = KeyMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)  # held back: maybe the sequence
    assert m.feed(b"c") == (b"\x10c", False)  # not: it goes on after all
    assert m.feed(b"\x10\x10") == (b"\x10", False)
    assert m.feed(b"\x11rest") == (b"", True)
    assert KeyMatcher(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def test_sizes(tmp_path: Path) -> None:
    assert human_size(0) == "0B" and human_size(999) == "999B"
    assert human_size(12_345) == "12.35kB" and human_size(1_982_000) == "1.982MB"
    (tmp_path / "a").write_bytes(b"x" * 100)
    os.link(tmp_path / "a", tmp_path / "hard")  # counted once
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"y" * 50)
    (tmp_path / "l").symlink_to("/etc/passwd")  # not followed
    assert tree_size(tmp_path) == 150 + len("/etc/passwd")


def test_cp_arguments() -> None:
    assert _split("web:/etc") == ("web", "/etc")
    assert _split("web:") == ("web", "/")
    assert _split("./a:b") == (None, "./a:b")  # Docker's way to name a local path with a colon
    assert _split("/x:y") == (None, "/x:y")
    assert _split("-") == (None, "-")
    assert _split("plain") == (None, "plain")


# -- cp's rules, host side -----------------------------------------------------------------------


def _roundtrip(src: str, dest: str, keep: bool = False) -> None:
    header = inspect_source(src, False, src)
    data = io.BytesIO()
    pack(header, data)
    data.seek(0)
    unpack(dest, header, data, keep, dest)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("A")
    (src / "sub" / "b").write_text("B")
    (tmp_path / "out").mkdir()
    return tmp_path


def test_a_directory_goes_into_an_existing_one_or_becomes_a_new_one(tree: Path) -> None:
    _roundtrip(str(tree / "src"), str(tree / "out"))
    assert (tree / "out" / "src" / "sub" / "b").read_text() == "B"
    _roundtrip(str(tree / "src"), str(tree / "new"))
    assert (tree / "new" / "a").read_text() == "A"
    _roundtrip(str(tree / "src") + "/.", str(tree / "out"))
    assert (tree / "out" / "a").read_text() == "A"  # SRC/. : the contents


def test_a_file_replaces_a_file_or_goes_into_a_directory(tree: Path) -> None:
    (tree / "out" / "x").write_text("old")
    _roundtrip(str(tree / "src" / "a"), str(tree / "out" / "x"))
    assert (tree / "out" / "x").read_text() == "A"
    _roundtrip(str(tree / "src" / "a"), str(tree / "out") + "/")
    assert (tree / "out" / "a").read_text() == "A"


def test_cp_refusals(tree: Path) -> None:
    (tree / "out" / "f").write_text("")
    with pytest.raises(CopyError, match="cannot copy a directory to a file"):
        _roundtrip(str(tree / "src"), str(tree / "out" / "f"))
    with pytest.raises(CopyError, match="no such directory"):
        _roundtrip(str(tree / "src" / "a"), str(tree / "nodir") + "/")
    with pytest.raises(CopyError, match="not a directory"):
        inspect_source(str(tree / "src" / "a") + "/", False, "x")
    with pytest.raises(CopyError, match="no such file"):
        inspect_source(str(tree / "nothing"), False, "x")
    with pytest.raises(CopyError, match="no such file or directory"):
        _roundtrip(str(tree / "src" / "a"), str(tree / "no" / "such" / "x"))


def _hostile_tar(*members: tuple[str, str, str]) -> io.BytesIO:
    """(name, kind, link or content) members."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value.encode()))
    data.seek(0)
    return data


def test_an_archive_cannot_write_outside_the_destination(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    header = {"dir": True, "name": "d", "contents": False}
    through_link = _hostile_tar(
        ("d", "dir", ""), ("d/l", "sym", str(outside)), ("d/l/x", "file", "pwn")
    )
    with pytest.raises(CopyError, match="refused"):
        unpack(str(dest), header, through_link, False, "dest")
    dotdot = _hostile_tar(("../escape", "file", "pwn"))
    with pytest.raises(CopyError, match="refused"):
        unpack(str(dest), None, dotdot, False, "dest")
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape").exists()


def test_owners_are_ours_unless_archive_mode(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.fail("needs root to chown")
    src = tmp_path / "f"
    src.write_text("x")
    os.chown(src, 1234, 5678)
    (tmp_path / "o1").mkdir()
    (tmp_path / "o2").mkdir()
    _roundtrip(str(src), str(tmp_path / "o1"))
    _roundtrip(str(src), str(tmp_path / "o2"), keep=True)
    assert (os.stat(tmp_path / "o1" / "f").st_uid, os.stat(tmp_path / "o1" / "f").st_gid) == (0, 0)
    assert (os.stat(tmp_path / "o2" / "f").st_uid, os.stat(tmp_path / "o2" / "f").st_gid) == (
        1234,
        5678,
    )
