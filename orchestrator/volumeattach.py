"""Attach a volume or a host folder to a running container, and detach it again.

The mount itself is the runtime's (runtime.hotmount: cloned on the host, attached inside the
container's mount namespace on a target resolved in its root). Here it is recorded: in the
container record (``attached``: ``inspect`` shows it, ``volume rm`` sees the volume in use,
``--volumes-from`` takes it) and in the bundle's config.json, so that the container has it
again when it starts the next time. The record is written first and undone if the mount
fails: a crash in between leaves a recorded mount that is there at the next start and that
``detach`` still removes, never one nobody knows of.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from orchestrator import ocimounts
from orchestrator.errors import ConflictError, NotFoundError, UserError
from orchestrator.mountspec import Mount, normalize, parse_volume
from orchestrator.volumes import Volumes


def parse(text: str, read_only: bool) -> Mount:
    """``SOURCE:TARGET[:OPTIONS]``: SOURCE a named volume or a host folder."""
    mount = parse_volume(text)
    if mount.source is None:
        raise UserError(f"volume attach {text}: give SOURCE:TARGET (a volume or a host folder)")
    return replace(mount, read_only=True) if read_only else mount


def attach(containers: Any, name: str, mount: Mount) -> Mount:
    """Mount ``mount`` into running container ``name`` now, and at its next starts."""
    from runtime.hotmount import MountSpec

    with containers._lock():
        container = containers.get(name)
        if not containers.is_running(container):
            raise ConflictError(
                f"container {container.name} is not running: give it the mount with run -v"
            )
        taken = {m.get("destination") for m in _read_config(container).get("mounts", [])}
        if mount.target in taken:
            raise ConflictError(f"container {container.name} already has a mount at {mount.target}")
        volumes = Volumes(containers.root)
        with volumes.lock():
            mount = _resolved(volumes, mount)
            _record(container, [*_attached(container.record), mount.to_record()])
        _add_to_bundle(container, mount)
        spec = MountSpec(
            source=str(mount.host_path),
            target=mount.target,
            read_only=mount.read_only,
            nosuid=not mount.suid,
            nodev=not mount.dev,
            noexec=mount.noexec,
            recursive=mount.recursive,
            propagation=mount.propagation or "rprivate",
        )
        try:
            containers.runtime.mount(container.id, spec)
        except BaseException:
            _remove_from_bundle(container, mount.target)
            _record(
                container, [m for m in _attached(container.record) if m["target"] != mount.target]
            )
            raise
    return mount


def detach(containers: Any, name: str, target: str) -> None:
    """Unmount what ``attach`` mounted at ``target`` (now if the container runs, and from its
    next starts)."""
    from runtime.errors import Error

    target = normalize(target)
    with containers._lock():
        container = containers.get(name)
        attached = _attached(container.record)
        if not any(m["target"] == target for m in attached):
            if any(m["target"] == target for m in container.record.get("mounts") or ()):
                raise ConflictError(
                    f"the mount at {target} was given when {container.name} was made: "
                    "only attached mounts detach"
                )
            raise NotFoundError(f"container {container.name} has nothing attached at {target}")
        if containers.is_running(container):
            try:
                containers.runtime.unmount(container.id, target)
            except Error as exc:
                if "nothing is mounted" not in str(exc):
                    raise
        _remove_from_bundle(container, target)
        _record(container, [m for m in attached if m["target"] != target])


def _resolved(volumes: Volumes, mount: Mount) -> Mount:
    import os

    assert mount.source is not None
    if mount.type == "volume":
        volume = volumes.get(mount.source)  # an unknown volume is an error here
        return replace(mount, host_path=str(volume.data))
    if not os.path.exists(mount.source):
        raise UserError(f"volume attach: host folder {mount.source} does not exist")
    return replace(mount, host_path=mount.source)


def _attached(record: dict[str, Any]) -> list[dict[str, Any]]:
    return list(record.get("attached") or ())


def _record(container: Any, attached: list[dict[str, Any]]) -> None:
    from runtime.state import write_json_atomic

    container.record["attached"] = attached
    write_json_atomic(container.directory / "container.json", container.record)


def _add_to_bundle(container: Any, mount: Mount) -> None:
    config = _read_config(container)
    ocimounts.add_to_spec(config, [mount])
    _write_config(container, config)


def _remove_from_bundle(container: Any, target: str) -> None:
    config = _read_config(container)
    config["mounts"] = [m for m in config.get("mounts", []) if m.get("destination") != target]
    _write_config(container, config)


def _read_config(container: Any) -> dict[str, Any]:
    return dict(json.loads((container.bundle / "config.json").read_text()))


def _write_config(container: Any, config: dict[str, Any]) -> None:
    from runtime.state import write_json_atomic

    write_json_atomic(container.bundle / "config.json", config)
