"""examples/legacy-links: Docker's link variables and hosts entries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli import REPO, Orc
from tests.integration.supervisor.conftest import shut_down_supervisor

pytestmark = pytest.mark.root

STACK = REPO / "examples" / "legacy-links" / "compose.yaml"


def test_the_legacy_links_example(orc: Orc, state_root: Path) -> None:
    try:
        orc("-f", str(STACK), "up", "-d")
        deadline = time.monotonic() + 10
        while "links-db-1" not in (logs := orc("-f", str(STACK), "logs", "app").stdout):
            assert time.monotonic() < deadline, logs
            time.sleep(0.1)
        lines = {line.removeprefix("links-app-1 | ") for line in logs.splitlines()}
        address = next(x for x in lines if x.startswith("DATABASE_PORT_5432_TCP_ADDR=")).split("=")[
            1
        ]
        assert {
            "DATABASE_ENV_DB_NAME=inventory",
            "DATABASE_NAME=/links-app-1/database",
            f"DATABASE_PORT=tcp://{address}:5432",
            f"DATABASE_PORT_5432_TCP=tcp://{address}:5432",
            "DATABASE_PORT_5432_TCP_PORT=5432",
            "DATABASE_PORT_5432_TCP_PROTO=tcp",
            f"{address}\tdatabase links-db-1",
        } <= lines
        # db answers at the linked name, on its exposed port (and keeps running)
        said = orc("-f", str(STACK), "exec", "app", "nc", "database", "5432").stdout
        assert said == "ready\n"
        states = orc("-f", str(STACK), "ps", "-a", "--format", "json").stdout
        assert '"exited"' not in states, states
        orc("-f", str(STACK), "down")
    finally:
        shut_down_supervisor(state_root)
