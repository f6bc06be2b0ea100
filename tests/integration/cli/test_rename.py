"""``orchestrator rename``: the name changes everywhere it is kept; a running container keeps
running, and its network peers reach it by the new name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root


def test_a_running_container_keeps_running_under_its_new_name(orc: Orc) -> None:
    cid = orc("run", "-d", "--name", "old", "busybox", "sleep", "300").stdout.strip()
    pid = json.loads(orc("ps", "--format", "json").stdout)[0]["pid"]
    orc("rename", "old", "new")
    rows = json.loads(orc("ps", "--format", "json").stdout)
    assert [(r["name"], r["id"], r["state"], r["pid"]) for r in rows] == [
        ("new", cid, "running", pid)
    ]
    assert orc("exec", "new", "true").returncode == 0
    done = orc("exec", "old", "true", check=False)
    assert done.returncode != 0 and "no such container: old" in done.stderr
    orc("stop", "-t", "0", "new")
    orc("start", "new")  # the bundle carries the new name into the runtime
    assert json.loads(orc("inspect", "new").stdout)[0]["name"] == "new"
    orc("create", "--name", "old", "busybox", "true")  # the old name is free again


def test_refusals(orc: Orc) -> None:
    orc("create", "--name", "one", "busybox", "true")
    orc("create", "--name", "two", "busybox", "true")
    for args, message in (
        (("one", "two"), "the container name 'two' is already in use"),
        (("one", "one"), "already named one"),
        (("nosuch", "x2"), "no such container: nosuch"),
        (("one", "bad/name"), "NEW_NAME"),
    ):
        done = orc("rename", *args, check=False)
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert sorted(r["name"] for r in json.loads(orc("ps", "-a", "--format", "json").stdout)) == [
        "one",
        "two",
    ]


def test_network_peers_reach_it_by_its_new_name(orc: Orc) -> None:
    orc("network", "create", "renamenet")
    orc("run", "-d", "--name", "srv", "--network", "renamenet", "busybox", "sleep", "300")
    orc("run", "-d", "--name", "peer", "--network", "renamenet", "busybox", "sleep", "300")
    assert "srv" in orc("exec", "peer", "cat", "/etc/hosts").stdout
    orc("rename", "srv", "backend")
    hosts = orc("exec", "peer", "cat", "/etc/hosts").stdout
    assert "backend" in hosts.split() and "srv" not in hosts.split()
    assert orc("exec", "peer", "ping", "-c", "1", "-W", "2", "backend").returncode == 0
    orc("rm", "-f", "backend", "peer")
    orc("network", "rm", "renamenet")


def test_a_stacks_container_is_not_renamed(orc: Orc, state_root: Path) -> None:
    cid = orc("create", "--name", "shop-web-1", "busybox", "true").stdout.strip()
    path = state_root / "containers" / cid / "container.json"
    record = json.loads(path.read_text())  # as the supervisor makes them
    record["options"]["identity"] = {"project": "shop", "service": "web", "replica": 1}
    path.write_text(json.dumps(record))
    done = orc("rename", "shop-web-1", "other", check=False)
    assert done.returncode == 1 and "belongs to the stack shop" in done.stderr
