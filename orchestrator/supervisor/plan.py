"""Planning: the desired stack against the observed containers gives the operations that make
them agree, each with its cause. Pure: no I/O, no clock; ``up --dry-run`` prints a plan, and
tests compare plans as text.

Rules (Compose's, where it has them):

- Replica ``r`` of service ``s`` is one container. Missing: create it. Its config hash or its
  image differs from the stack's: recreate it (unless ``no_recreate``; always with
  ``force_recreate``). Present but not running: start it. More replicas than asked for: remove
  the highest numbers. Two containers for one replica (a crash between create and record can
  leave that): keep the running or newest one, remove the other.
- A recreated service restarts the services that depend on it with ``restart: true``.
- Containers of services the stack no longer has are orphans: reported, and removed with
  ``remove_orphans``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.stack.graph import DependencyGraph
from orchestrator.stack.model import Stack

Action = Literal["create", "recreate", "start", "restart", "remove"]
RUNNING_STATES = ("running", "paused")


@dataclass(frozen=True)
class Observed:
    """One existing container of the project, as its record and the kernel say."""

    id: str
    name: str
    service: str
    replica: int
    config_hash: str
    image_id: str
    state: str  # creating, created, running, paused, exited
    created: str = ""
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class Operation:
    action: Action
    service: str
    replica: int
    cause: str
    container: str | None = None  # the existing container's id (all but create)
    name: str | None = None  # the existing container's name

    def text(self) -> str:
        return f"{self.action} {self.service}-{self.replica}: {self.cause}"


@dataclass(frozen=True)
class PlanOptions:
    services: tuple[str, ...] = ()  # only these (and what they depend on); empty: all
    no_deps: bool = False
    scale: Mapping[str, int] = field(default_factory=dict)
    force_recreate: bool = False
    no_recreate: bool = False
    no_start: bool = False
    remove_orphans: bool = False


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...]
    orphans: tuple[Observed, ...]
    services: tuple[str, ...]  # the services this plan covers, in start order

    def text(self) -> str:
        lines = [op.text() for op in self.operations]
        lines += [
            f"orphan {o.name}: service {o.service!r} is not in the stack"
            for o in self.orphans
            if not any(op.container == o.id for op in self.operations)
        ]
        return "\n".join(lines) + ("\n" if lines else "")

    def for_service(self, service: str) -> list[Operation]:
        return [op for op in self.operations if op.service == service]

    @property
    def empty(self) -> bool:
        return not self.operations


def replicas_of(stack: Stack, service: str, scale: Mapping[str, int]) -> int:
    return int(scale.get(service, stack.services[service].replicas))


def make_plan(
    stack: Stack,
    observed: Iterable[Observed],
    image_ids: Mapping[str, str],
    options: PlanOptions = PlanOptions(),
) -> Plan:
    """The operations that bring ``observed`` to ``stack``. ``image_ids``: the id each
    service's image has now (services whose image is unknown yet are left out)."""
    graph = DependencyGraph.from_services(stack.services)
    existing = list(observed)
    if options.services:
        chosen = (
            tuple(options.services) if options.no_deps else graph.closure(list(options.services))
        )
    else:
        chosen = tuple(stack.services)
    order = tuple(name for name in graph.start_order() if name in chosen)
    operations: list[Operation] = []
    recreated: set[str] = set()
    for name in order:
        service = stack.services[name]
        want = replicas_of(stack, name, options.scale)
        mine = [c for c in existing if c.service == name]
        by_replica: dict[int, list[Observed]] = {}
        for container in mine:
            by_replica.setdefault(container.replica, []).append(container)
        for replica in sorted(by_replica):
            keep, *extra = sorted(by_replica[replica], key=_preference)
            by_replica[replica] = [keep]
            operations += [
                Operation(
                    "remove", name, replica, "a second container for this replica", c.id, c.name
                )
                for c in extra
            ]
        for replica in range(1, want + 1):
            found = by_replica.get(replica)
            current = found[0] if found else None
            if current is None:
                operations.append(Operation("create", name, replica, "no container"))
                continue
            cause = _recreate_cause(current, service.config_hash, image_ids.get(name), options)
            if cause:
                operations.append(
                    Operation("recreate", name, replica, cause, current.id, current.name)
                )
                recreated.add(name)
            elif not current.running and not options.no_start:
                operations.append(
                    Operation(
                        "start", name, replica, f"it is {current.state}", current.id, current.name
                    )
                )
        for replica in sorted(r for r in by_replica if r > want):
            current = by_replica[replica][0]
            operations.append(
                Operation("remove", name, replica, f"scaled to {want}", current.id, current.name)
            )
    # Dependents that asked to follow a dependency's restart (depends_on: restart: true).
    for name in order:
        if name in recreated:
            continue
        follows = [
            d.service
            for d in stack.services[name].depends_on
            if d.restart and d.service in recreated
        ]
        if not follows:
            continue
        for container in sorted(
            (c for c in existing if c.service == name and c.running), key=lambda c: c.replica
        ):
            if any(op.container == container.id for op in operations):
                continue
            operations.append(
                Operation(
                    "restart",
                    name,
                    container.replica,
                    f"{follows[0]} is recreated (depends_on restart: true)",
                    container.id,
                    container.name,
                )
            )
    orphans = tuple(
        sorted(
            (c for c in existing if c.service not in stack.services),
            key=lambda c: (c.service, c.replica),
        )
    )
    if options.remove_orphans:
        operations += [
            Operation("remove", o.service, o.replica, "orphan: not in the stack", o.id, o.name)
            for o in orphans
        ]
    return Plan(tuple(operations), orphans, order)


def _preference(container: Observed) -> tuple[int, str]:
    """Which of two containers of one replica to keep: a running one, else the newest."""
    newest_first = "".join(chr(0x10FFFF - ord(ch)) for ch in container.created)
    return (0 if container.running else 1, newest_first)


def _recreate_cause(
    current: Observed, config_hash: str, image_id: str | None, options: PlanOptions
) -> str | None:
    if options.force_recreate:
        return "--force-recreate"
    if options.no_recreate:
        return None
    if current.state == "creating":
        return "its creation did not finish"
    if current.config_hash != config_hash:
        return "its configuration changed"
    if image_id and current.image_id and current.image_id != image_id:
        return "its image changed"
    return None
