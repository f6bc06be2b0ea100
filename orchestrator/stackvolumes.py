"""A stack's top-level ``volumes:``, for the supervisor: made before its containers (``up``),
removed with ``down -v``.

A volume the stack declares is named ``<project>_<key>`` unless it has a ``name``; an
``external`` one must exist already and is never made or removed here. The project and key
are the volume's labels, as Compose labels them, so that ``down -v`` removes only its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.description import PROJECT_LABEL
from orchestrator.errors import NotFoundError, UserError
from orchestrator.servicemounts import LABEL_VOLUME
from orchestrator.volumes import Volumes

if TYPE_CHECKING:
    from orchestrator.stack.model import Stack


def volume_names(stack: Stack) -> dict[str, str]:
    """Volume keys to the volumes' names (``from_service``'s ``volume_names``)."""
    return {key: volume.name for key, volume in stack.volumes.items()}


def ensure(root: Path, stack: Stack) -> list[str]:
    """Make the stack's volumes that do not exist; check that the external ones do. The
    names made now."""
    volumes = Volumes(root)
    for key, volume in stack.volumes.items():
        if volume.driver not in (None, "local"):
            raise UserError(f"volumes.{key}.driver: {volume.driver!r}: only local exists here")
        if volume.external and volumes.find(volume.name) is None:
            raise NotFoundError(
                f"volumes.{key}: external volume {volume.name} does not exist "
                f"(orchestrator volume create {volume.name})"
            )
    made = []
    for key, volume in stack.volumes.items():
        if volume.external:
            continue
        labels = {**volume.labels, PROJECT_LABEL: stack.name, LABEL_VOLUME: key}
        _, new = volumes.create(volume.name, labels, dict(volume.driver_opts), exist_ok=True)
        if new:
            made.append(volume.name)
    return made


def remove(root: Path, stack: Stack) -> list[str]:
    """``down -v``: the stack's own volumes that no container uses any more."""
    volumes = Volumes(root)
    names = [
        v.name
        for v in stack.volumes.values()
        if not v.external
        and (found := volumes.find(v.name)) is not None
        and found.record.get("labels", {}).get(PROJECT_LABEL) == stack.name
    ]
    return volumes.remove_unused(names)
