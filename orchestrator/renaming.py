"""``rename OLD NEW``: a container's name, everywhere it is kept.

The record (container.json) is the truth; the bundle's annotation carries the name into the
runtime at the next start; the networks' records give it to peers' hosts files (rewritten in
place at once, so that a running container is reachable by its new name). A running container
keeps running. A stack's container is refused: the supervisor names them by service.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from orchestrator.errors import ConflictError, UserError


def rename(containers: Any, old: str, new: str) -> Any:
    """Rename the container ``old`` to ``new``; the container as it was."""
    from orchestrator import eventlog
    from orchestrator.stack.units import UnitError, check_container_name
    from runtime import state as rstate
    from runtime.filelock import exclusive

    try:
        check_container_name(new)
    except UnitError as exc:
        raise UserError(exc.message.replace("container_name", "NEW_NAME")) from None
    container = containers.get(old)
    if container.broken:
        raise ConflictError(f"container {container.name}: {container.broken}: cannot rename it")
    project = (container.record.get("options", {}).get("identity") or {}).get("project")
    if project:
        raise ConflictError(
            f"container {container.name} belongs to the stack {project}: its name comes from"
            " the stack file"
        )
    if new == container.name:
        raise UserError(f"container {container.name} is already named {new}")
    with exclusive(containers.directory / ".lock"):
        taken = {c.name for c in containers.all()} | {c.name for c in containers.broken}
        if new in taken:
            raise ConflictError(f"the container name {new!r} is already in use")
        path = container.directory / "container.json"
        record = json.loads(path.read_bytes())
        record["name"] = new
        rstate.write_json_atomic(path, record)
    _rename_in_bundle(container.bundle / "config.json", new)
    if (containers.root / "networks").exists():
        _rename_in_networks(containers.networks, container.id, new)
    renamed = dataclasses.replace(container, name=new)
    eventlog.note(containers.root, "rename", renamed, oldName=container.name)
    return container


def _rename_in_bundle(config_path: Any, new: str) -> None:
    from orchestrator.description import ANNOTATION_NAME
    from runtime import state as rstate

    try:
        config = json.loads(config_path.read_bytes())
    except FileNotFoundError:
        return
    config.setdefault("annotations", {})[ANNOTATION_NAME] = new
    rstate.write_json_atomic(config_path, config)


def _rename_in_networks(networks: Any, container_id: str, new: str) -> None:
    with networks.store.edit() as data:
        meta = data["hosts"].get(container_id)
        if meta is None:
            return
        meta["name"] = new
        affected = {ep["network"] for ep in data["endpoints"].get(container_id, [])}
        networks._refresh_hosts(data, affected)
