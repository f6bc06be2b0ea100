"""Stacks under a real supervisor: each test gets the CLI on its own state root, and at its end
every project is taken down and the supervisor shut down, so that the leak check judges what
the code left, not what the test kept."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import Orc

STOPS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


@pytest.fixture
def stack(orc: Orc, state_root: Path, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``stack(text)`` writes the stack file; returns a runner of ``orc -f FILE ...``."""
    project = tmp_path / "project"
    project.mkdir()
    compose = project / "compose.yaml"

    def write(text: str) -> Callable[..., Any]:
        compose.write_text(text)

        def run(*args: str, check: bool = True) -> Any:
            return orc("-f", str(compose), *args, check=check)

        return run

    yield write
    shut_down_supervisor(state_root)


def shut_down_supervisor(state_root: Path) -> None:
    """Take every project down and stop the supervisor of ``state_root`` (if one runs)."""
    from orchestrator.supervisor import httpclient as http

    sock = state_root / "supervisor.sock"
    try:
        for project_row in http.call(sock, "GET", "/v1/projects")[1] or []:
            http.call(
                sock,
                "POST",
                f"/v1/projects/{project_row['name']}/down",
                {"timeout": 2, "volumes": True},
            )
        http.call(sock, "POST", "/v1/shutdown")
    except http.Unreachable:
        pass
    lock = state_root / "supervisor.lock"
    deadline = time.monotonic() + 10
    while lock.exists() and _held(lock):
        assert time.monotonic() < deadline, "the supervisor did not stop"
        time.sleep(0.02)


def _held(lock: Path) -> bool:
    import os

    from runtime.filelock import open_lock, try_lock

    fd = open_lock(lock)
    try:
        return not try_lock(fd)
    finally:
        os.close(fd)


def rows(run: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in json.loads(run("ps", "-a", "--format", "json").stdout)}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
