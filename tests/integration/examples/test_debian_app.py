"""examples/debian-app end to end: a base image bootstrapped from the Debian archive with
``orchestrator image bootstrap``, nginx in front of a Python app that counts hits in redis.

The bootstrap uses the machine's cache (``$ORCHESTRATOR_CACHE_DIR``, else
``/var/cache/orchestrator`` as root): the first run on a machine downloads and installs the
packages (about 40 s on the 2-core CI VM), later runs import the cached tree (1-3 s). The whole
test took 48 s without the cache and 8-9 s with it, well within CI's budget, so CI runs it every
time, cache or not. It is skipped, and says why, only where it cannot run at all: without
debootstrap (scripts/install installs it), or when there is no cached tree and the Debian mirror
apt uses cannot be reached.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import REPO, Orc
from tests.integration.supervisor.conftest import shut_down_supervisor, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

STACK = REPO / "examples" / "debian-app" / "compose.yaml"
BASE = "debian-app-base"
PACKAGES = "nginx-light,python3,redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bootstrap(orc: Orc) -> None:
    """The base image, as the example's README makes it (cached on this machine)."""
    done = orc(
        "image", "bootstrap", "debian", "--include", PACKAGES, BASE, check=False, timeout=900
    )
    if done.returncode == 0:
        return
    reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if "debootstrap is not installed" in reason or "cannot reach the Debian mirror" in reason:
        pytest.skip(f"cannot bootstrap the base image here: {reason}")
    raise AssertionError(f"image bootstrap exited {done.returncode}: {done.stderr}")


@pytest.fixture
def debian_app(orc: Orc, state_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    port = _free_port()
    monkeypatch.setenv("WEB_PORT", str(port))
    _bootstrap(orc)

    def run(*args: str, check: bool = True) -> Any:
        return orc("-f", str(STACK), *args, check=check, timeout=300)

    run.port = port  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        shut_down_supervisor(state_root)
        orc("image", "rm", "debian-app-nginx", "debian-app-app", BASE, check=False)


def _get(port: int, path: str) -> tuple[int, str, str]:
    """Status, body and the Server header."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode(), str(reply.headers.get("Server"))
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), str(exc.headers.get("Server"))


def _hits(port: int) -> int:
    status, body, _ = _get(port, "/api/hits")
    assert status == 200, (status, body)
    return int(json.loads(body)["hits"])


def _hits_when_back(port: int, timeout: float = 20) -> int:
    """The next count, once the page is served again (nginx answers 502 while the app is
    down, the app 503 while redis is)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _hits(port)
        except (AssertionError, OSError):
            assert time.monotonic() < deadline, "the page did not come back"
            time.sleep(0.2)


def _rows(run: Any) -> dict[str, dict[str, Any]]:
    return {r["service"]: r for r in json.loads(run("ps", "-a", "--format", "json").stdout)}


def test_the_debian_app_example(debian_app: Any) -> None:
    run = debian_app
    done = run("up", "-d", "--wait")
    assert done.returncode == 0, done.stderr
    rows = _rows(run)
    assert {s: r["health"] for s, r in rows.items()} == {
        "nginx": "healthy",
        "app": "healthy",
        "redis": "healthy",
    }

    # the page, through nginx on the host's loopback; every request counts one hit in redis
    status, page, server = _get(run.port, "/")
    assert (status, server) == (200, "nginx"), page  # the app's own would be debian-app/1
    first = int(re.search(r"<b id='hits'>(\d+)</b>", page).group(1))  # type: ignore[union-attr]
    assert _hits(run.port) == first + 1
    assert _hits(run.port) == first + 2

    # redis recreated: a new container, the count kept in the named volume (append-only file)
    old = rows["redis"]["id"]
    run("up", "-d", "--force-recreate", "--no-deps", "redis")
    assert _rows(run)["redis"]["id"] != old
    wait_for(lambda: _rows(run)["redis"]["health"] == "healthy", timeout=30, what="redis healthy")
    assert _hits_when_back(run.port) == first + 3

    # the app killed from outside: its restart policy heals it, nginx serves the page again
    os.kill(rows["app"]["pid"], signal.SIGKILL)
    wait_for(lambda: _rows(run)["app"]["restart_count"] == 1, timeout=30, what="app restarted")
    wait_for(lambda: _rows(run)["app"]["state"] == "running", timeout=30, what="app running")
    assert _hits_when_back(run.port) == first + 4
    assert _rows(run)["app"]["pid"] != rows["app"]["pid"]

    run("down")
    assert _rows(run) == {}
