"""examples/webstack end to end: built from its Dockerfiles, the page served on a published
port, a killed tier healed, the data tier recreated with its data kept."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import REPO, Orc
from tests.integration.supervisor.conftest import shut_down_supervisor, wait_for

pytestmark = pytest.mark.root

STACK = REPO / "examples" / "webstack" / "compose.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def webstack(orc: Orc, state_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    port = _free_port()
    monkeypatch.setenv("WEB_PORT", str(port))

    def run(*args: str, check: bool = True) -> Any:
        return orc("-f", str(STACK), *args, check=check)

    run.port = port  # type: ignore[attr-defined]
    yield run
    shut_down_supervisor(state_root)
    orc("image", "rm", "webstack-web", "webstack-api", "webstack-data", check=False)


def _page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/index", timeout=10) as reply:
        return str(reply.read().decode())


def _visits(port: int) -> int:
    text = _page(port)
    return int(json.loads(text.split("api says: ")[1].split("</p>")[0])["visits"])


def _rows(run: Any, *flags: str) -> dict[str, dict[str, Any]]:
    return {r["service"]: r for r in json.loads(run("ps", *flags, "--format", "json").stdout)}


def test_the_webstack_example(webstack: Any) -> None:
    run = webstack
    done = run("up", "-d", "--wait")
    assert done.returncode == 0, done.stderr
    rows = _rows(run)
    assert {s: r["health"] for s, r in rows.items()} == {
        "web": "healthy",
        "api": "healthy",
        "data": "healthy",
    }
    assert rows["web"]["ports"] == [f"127.0.0.1:{run.port}->80/tcp"]
    first = _visits(run.port)
    assert _visits(run.port) == first + 1
    # a tier killed from outside is healed by its restart policy
    os.kill(rows["api"]["pid"], signal.SIGKILL)
    # (-a: between its death and its restart, ps alone does not list it)
    wait_for(lambda: _rows(run, "-a")["api"]["restart_count"] == 1, what="api restarted")
    wait_for(lambda: _rows(run, "-a")["api"]["state"] == "running", what="api running")
    deadline = time.monotonic() + 10
    while True:
        try:
            assert _visits(run.port) == first + 2
            break
        except Exception:
            assert time.monotonic() < deadline, "the page did not come back"
            time.sleep(0.1)
    # the data tier recreated: a new container, the same count
    old = rows["data"]["id"]
    run("up", "-d", "--force-recreate", "--no-deps", "data")
    assert _rows(run)["data"]["id"] != old
    wait_for(lambda: _rows(run)["data"]["health"] == "healthy", what="data healthy")
    assert _visits(run.port) == first + 3
    run("down")
