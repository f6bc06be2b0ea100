"""Executing plans against a fake engine: dependency order, parallelism, failures that stop
only what needs them."""

from __future__ import annotations

from pathlib import Path

import trio

from orchestrator.stack import load_stack
from orchestrator.supervisor.execute import ExecutionError, execute
from orchestrator.supervisor.plan import Operation, make_plan

STACK = """
name: shop
services:
  db: {image: busybox}
  cache: {image: busybox}
  api:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started, required: false}
  web: {image: busybox, depends_on: [api]}
  batch: {image: busybox}
"""


class FakeEngine:
    def __init__(self, failing: set[str] = frozenset(), unhealthy: set[str] = frozenset()) -> None:
        self.failing = failing
        self.unhealthy = unhealthy
        self.log: list[str] = []
        self.running: set[str] = set()

    async def apply(self, operation: Operation) -> None:
        self.log.append(f"begin {operation.service}")
        await trio.sleep(0.1)
        if operation.service in self.failing:
            raise ExecutionError("no such binary")
        self.running.add(operation.service)
        self.log.append(f"end {operation.service}")

    async def wait_condition(self, service: str, condition: str, timeout: float) -> None:
        if service in self.unhealthy and condition == "service_healthy":
            raise ExecutionError(f"{service} is unhealthy")
        if service not in self.running:
            raise ExecutionError(f"{service} is not running")


async def _run(tmp_path: Path, engine: FakeEngine) -> tuple[object, list[tuple[str, str]]]:
    (tmp_path / "compose.yaml").write_text(STACK)
    stack = load_stack([tmp_path / "compose.yaml"])
    plan = make_plan(stack, [], {})
    reports: list[tuple[str, str]] = []

    async def report(service: str, what: str, detail: str) -> None:
        reports.append((service, what))

    outcome = await execute(stack, plan, engine, report)
    return outcome, reports


async def test_independent_services_start_together_and_dependents_after(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    engine = FakeEngine()
    start = trio.current_time()
    outcome, _ = await _run(tmp_path, engine)
    assert outcome.ok  # type: ignore[attr-defined]
    # three layers of 0.1 s each: db, cache and batch together; then api; then web
    assert trio.current_time() - start < 0.35
    assert engine.log.index("end db") < engine.log.index("begin api")
    assert engine.log.index("end api") < engine.log.index("begin web")


async def test_a_failure_stops_its_dependents_only(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    engine = FakeEngine(failing={"db"})
    outcome, reports = await _run(tmp_path, engine)
    failed = outcome.failed  # type: ignore[attr-defined]
    assert set(failed) == {"db", "api", "web"}
    assert failed["api"] == "its dependency db failed"
    assert "end batch" in engine.log and "end cache" in engine.log
    assert ("web", "skipped") in reports


async def test_an_optional_dependency_may_fail(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    engine = FakeEngine(failing={"cache"})
    outcome, _ = await _run(tmp_path, engine)
    assert set(outcome.failed) == {"cache"}  # type: ignore[attr-defined]
    assert "end web" in engine.log


async def test_an_unhealthy_dependency_is_the_reason_given(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    engine = FakeEngine(unhealthy={"db"})
    outcome, _ = await _run(tmp_path, engine)
    failed = outcome.failed  # type: ignore[attr-defined]
    assert failed["api"] == "db did not meet service_healthy: db is unhealthy"
