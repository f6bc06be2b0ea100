"""Executing a plan: services in dependency order, independent ones in parallel, the replicas
of a service in parallel. Before a service's operations run, its dependencies must meet their
``depends_on`` condition; a failure stops the services that need it (an optional dependency,
``required: false``, does not) and is reported with its reason. The executor decides nothing:
the plan says what, the engine does it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from orchestrator.stack.graph import DependencyGraph
from orchestrator.stack.model import Stack
from orchestrator.supervisor.plan import Operation, Plan


class Engine(Protocol):
    """What executing needs done (the supervisor does it for real; tests fake it)."""

    async def apply(self, operation: Operation) -> None:
        """Carry one operation out; raise ``ExecutionError`` (or a runtime Error) on failure."""

    async def wait_condition(self, service: str, condition: str, timeout: float) -> None:
        """Return once ``service`` meets ``condition`` (service_started, service_healthy,
        service_completed_successfully); raise ``ExecutionError`` if it cannot."""


class ExecutionError(Exception):
    pass


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)  # operations carried out (their text)
    failed: dict[str, str] = field(default_factory=dict)  # service -> why

    @property
    def ok(self) -> bool:
        return not self.failed


Report = Callable[[str, str, str], Awaitable[None]]  # (service, what, detail)


async def execute(
    stack: Stack,
    plan: Plan,
    engine: Engine,
    report: Report,
    *,
    wait_timeout: float = 120.0,
    start: bool = True,
) -> Outcome:
    """Run ``plan`` against ``engine``. ``start=False`` (``up --no-start``): conditions are not
    waited for."""
    graph = DependencyGraph.from_services(stack.services)
    outcome = Outcome()
    finished = {name: trio.Event() for name in plan.services}

    async def run_service(name: str) -> None:
        try:
            service = stack.services[name]
            conditions = {d.service: d for d in service.depends_on}
            for dependency in graph.dependencies(name):
                if dependency in finished:
                    await finished[dependency].wait()
                needed = conditions.get(dependency)
                required = needed.required if needed is not None else True
                if dependency in outcome.failed:
                    if required:
                        outcome.failed[name] = f"its dependency {dependency} failed"
                        await report(name, "skipped", outcome.failed[name])
                        return
                    continue
                if not start:
                    continue
                condition = needed.condition if needed is not None else "service_started"
                try:
                    await engine.wait_condition(dependency, condition, wait_timeout)
                except Exception as exc:
                    if required:
                        outcome.failed[name] = f"{dependency} did not meet {condition}: {exc}"
                        await report(name, "skipped", outcome.failed[name])
                        return
            operations = plan.for_service(name)
            errors: list[str] = []

            async def run_one(operation: Operation) -> None:
                try:
                    await engine.apply(operation)
                    outcome.done.append(operation.text())
                except Exception as exc:
                    errors.append(
                        f"{operation.action} {operation.service}-{operation.replica}: {exc}"
                    )

            # Removals first (a replica's name may be reused), then the rest in parallel.
            async with trio.open_nursery() as nursery:
                for operation in operations:
                    if operation.action == "remove":
                        nursery.start_soon(run_one, operation)
            async with trio.open_nursery() as nursery:
                for operation in operations:
                    if operation.action != "remove":
                        nursery.start_soon(run_one, operation)
            if errors:
                outcome.failed[name] = "; ".join(errors)
                await report(name, "failed", outcome.failed[name])
        finally:
            finished[name].set()

    async with trio.open_nursery() as nursery:
        for name in plan.services:
            nursery.start_soon(run_service, name)
    # Operations on services outside the chosen ones (orphans removed) run last.
    chosen = set(plan.services)
    for operation in plan.operations:
        if operation.service not in chosen:
            try:
                await engine.apply(operation)
                outcome.done.append(operation.text())
            except Exception as exc:
                outcome.failed[operation.service] = str(exc)
    return outcome
