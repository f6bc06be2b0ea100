"""A stack service's ``volumes``, ``tmpfs`` and ``volumes_from`` as a container's mounts.

The stack model (orchestrator.stack.model) already holds them parsed, checked and with bind
paths made absolute from the stack file's folder; here they become the description's types
(orchestrator.mountspec): a volume key becomes the volume's real name, a service named in
``volumes_from`` the container whose volumes are taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.description import PROJECT_LABEL
from orchestrator.errors import UserError
from orchestrator.mountspec import Mount, VolumesFrom

LABEL_VOLUME = "org.orchestrator.volume"

if TYPE_CHECKING:
    from orchestrator.stack.model import Mount as StackMount
    from orchestrator.stack.model import Service


def service_mounts(
    project: str,
    service: Service,
    volume_names: Mapping[str, str] | None = None,
    service_containers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The description's ``mounts`` and ``volumes_from`` for ``service`` (see
    orchestrator.description.from_service for the two mappings' defaults)."""
    names = dict(volume_names or {})
    containers = dict(service_containers or {})
    mounts = tuple(
        _mount(m, project, names, service.name) for m in (*service.volumes, *service.tmpfs)
    )
    volumes_from = tuple(
        VolumesFrom(
            containers.get(v.source, f"{project}-{v.source}-1")
            if v.kind == "service"
            else v.source,
            True if v.read_only else None,
        )
        for v in service.volumes_from
    )
    return {"mounts": mounts, "volumes_from": volumes_from}


def _mount(m: StackMount, project: str, names: dict[str, str], service: str) -> Mount:
    if m.type == "tmpfs":
        return Mount(
            "tmpfs",
            m.target,
            read_only=m.read_only,
            tmpfs_size=m.tmpfs_size,
            tmpfs_mode=m.tmpfs_mode,
        )
    if m.type == "bind":
        return Mount(
            "bind",
            m.target,
            m.source,
            m.read_only,
            propagation=m.propagation,
            create_host_path=m.create_host_path,
        )
    if m.subpath:
        raise UserError(f"services.{service}.volumes: volume subpath is not supported")
    if m.source is None:
        return Mount("volume", m.target, None, m.read_only, nocopy=m.nocopy)
    # Labelled as orchestrator.stackvolumes.ensure labels it, should the container be the one
    # to make it (the supervisor makes the stack's volumes first; an external one must exist).
    labels = (f"{PROJECT_LABEL}={project}", f"{LABEL_VOLUME}={m.source}")
    name = names.get(m.source, f"{project}_{m.source}")
    return Mount("volume", m.target, name, m.read_only, nocopy=m.nocopy, volume_labels=labels)
