"""What exists: the containers of a project, from their records (which say which project,
service, replica and config hash they are) and the runtime (which says whether they run).

One-off containers (``orchestrator -f FILE run SERVICE``) belong to the project but are none
of its replicas: left out unless asked for, so that the supervisor never counts, recreates,
restarts or removes them as orphans; ``down`` and ``ps -a`` ask for them."""

from __future__ import annotations

from typing import Any

from orchestrator.containers import Container, Containers
from orchestrator.supervisor.plan import Observed


def identity(container: Container) -> dict[str, Any]:
    raw = container.record.get("options", {}).get("identity") or {}
    return raw if isinstance(raw, dict) else {}


def is_oneoff(container: Container) -> bool:
    return bool(identity(container).get("oneoff"))


def project_containers(
    containers: Containers, project: str, oneoffs: bool = False
) -> list[Container]:
    """The project's containers: its services' replicas, and with ``oneoffs`` its one-off
    containers too."""
    return [
        c
        for c in containers.all()
        if identity(c).get("project") == project and (oneoffs or not is_oneoff(c))
    ]


def project_oneoffs(containers: Containers, project: str) -> list[Container]:
    return [c for c in project_containers(containers, project, True) if is_oneoff(c)]


def projects_in_use(containers: Containers) -> set[str]:
    return {str(identity(c)["project"]) for c in containers.all() if identity(c).get("project")}


def observe(containers: Containers, project: str) -> list[Observed]:
    """(blocking) The project's containers, with the kernel's view of each (its one-offs are
    not among them: they are no replicas, and no orphans either)."""
    result = []
    for container in project_containers(containers, project):
        ident = identity(container)
        status = containers.status(container)
        result.append(
            Observed(
                id=container.id,
                name=container.name,
                service=str(ident.get("service") or ""),
                replica=int(ident.get("replica") or 0),
                config_hash=str(ident.get("config_hash") or ""),
                image_id=str(container.record.get("image_id") or ""),
                state=str(status["state"]),
                created=str(container.record.get("created") or ""),
                exit_code=status.get("exit_code"),
            )
        )
    return result
