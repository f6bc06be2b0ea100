"""depends_on conditions as the supervisor judges them (orchestrator.supervisor.daemon)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from orchestrator.supervisor.daemon import _condition_met


def _c(cid: str) -> Any:
    return SimpleNamespace(id=cid)


def test_service_started_fails_once_the_dependency_has_exited_for_good() -> None:
    containers = [_c("a")]
    exited = [{"state": "exited", "exit_code": 3}]
    # no restart to come: it never will be started (Compose: dependency failed to start)
    assert _condition_met("service_started", containers, exited, {}, "db", {"a"}) == (
        "db exited with code 3"
    )
    # its restart policy brings it back: wait
    assert _condition_met("service_started", containers, exited, {}, "db", set()) is None
    running = [{"state": "running"}]
    assert _condition_met("service_started", containers, running, {}, "db", set()) is True


def test_completed_successfully_and_healthy() -> None:
    containers = [_c("a")]
    assert (
        _condition_met(
            "service_completed_successfully",
            containers,
            [{"state": "exited", "exit_code": 0}],
            {},
            "job",
        )
        is True
    )
    assert (
        _condition_met(
            "service_healthy", containers, [{"state": "running"}], {"a": "unhealthy"}, "db"
        )
        == "db is unhealthy"
    )
    assert (
        _condition_met(
            "service_healthy", containers, [{"state": "running"}], {"a": "healthy"}, "db"
        )
        is True
    )
