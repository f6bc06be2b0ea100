"""A container's mounts made real when it is created (``Containers.create``; the supervisor's
containers come through it too).

From the description's mounts, the mounts of the containers named in ``volumes_from`` and the
image's ``VOLUME``s, ``prepare`` makes the list the bundle mounts:

- a named volume that does not exist yet is made (as ``docker run -v NAME:/path`` does);
  an anonymous one (``-v /path``, an image ``VOLUME``) is made with a fresh name, owned by
  the container; an empty volume is filled from the image at its target unless ``nocopy``
  (orchestrator.volumecopy);
- a bind source must exist, unless ``create_host_path`` asks that it be made;
- a target the image has as a file where a folder is needed (or the other way) is refused;
- ``volumes_from`` takes the other container's volumes and binds at the same targets (its
  tmpfs mounts are its own), read-only or read-write as asked, else as they were.

Anything wrong is one ``UserError``, and the volumes made meanwhile are removed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.description import ContainerDescription
from orchestrator.errors import ConflictError, NotFoundError, UserError
from orchestrator.mountspec import Mount, check_unique_targets, clean_target
from orchestrator.volumes import Volumes, check_options, parse_pairs

if TYPE_CHECKING:
    from runtime.image.model import Image


@dataclass
class MountPlan:
    """The mounts to give the runtime (volumes resolved: ``host_path`` set), and the volumes
    made for them (removed again by ``undo`` if the container is not made after all)."""

    root: Path
    container_id: str
    mounts: tuple[Mount, ...] = ()
    made: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [m.to_record() for m in self.mounts]

    def undo(self) -> None:
        if self.made:
            Volumes(self.root).remove_unused(self.made, made_for=self.container_id)
            self.made = []


def prepare(
    root: Path,
    description: ContainerDescription,
    image: Image | None,
    layers: list[Path],
    container_id: str,
) -> MountPlan:
    plan = MountPlan(root, container_id)
    wanted = _wanted(root, description, image)
    if not wanted:
        return plan
    volumes = Volumes(root)
    resolved = []
    try:
        with volumes.lock():
            for m in wanted:
                resolved.append(_resolve(volumes, m, layers, description, plan))
    except BaseException:
        plan.undo()
        raise
    plan.mounts = tuple(resolved)
    return plan


def _wanted(root: Path, description: ContainerDescription, image: Image | None) -> list[Mount]:
    """The description's own mounts, then those taken from other containers, then the image's
    volumes, each target once (the first one named wins)."""
    own = list(description.mounts)
    check_unique_targets(own)
    targets = {m.target for m in own}
    inherited = []
    for source in description.volumes_from:
        for m in _mounts_of(root, source.container):
            if m.type == "tmpfs" or m.target in targets:
                continue
            if source.read_only is not None:
                m = replace(m, read_only=source.read_only)
            inherited.append(replace(m, nocopy=True, create_host_path=False))
            targets.add(m.target)
    from_image = []
    for path in image.volumes if image else []:
        target = clean_target(path, f"image VOLUME {path}")
        if target not in targets:
            from_image.append(Mount("volume", target))
            targets.add(target)
    return own + inherited + from_image


def _mounts_of(root: Path, name: str) -> list[Mount]:
    from orchestrator.containers import Containers

    try:
        container = Containers(root).get(name)
    except NotFoundError:
        raise UserError(f"--volumes-from {name}: no such container") from None
    raws = [*(container.record.get("mounts") or ()), *(container.record.get("attached") or ())]
    return [Mount.from_record(raw) for raw in raws]


def _resolve(
    volumes: Volumes,
    m: Mount,
    layers: list[Path],
    description: ContainerDescription,
    plan: MountPlan,
) -> Mount:
    from orchestrator.volumecopy import fill, image_kind

    kind = image_kind(layers, m.target) if layers else None
    if m.type == "bind":
        source_kind = _bind_source_kind(m)
        if kind is not None and kind != source_kind:
            raise UserError(_mismatch(m, kind, description.image))
        return replace(m, host_path=m.source)
    if kind == "file":
        raise UserError(_mismatch(m, kind, description.image))
    if m.type == "tmpfs":
        return m
    if m.host_path:  # taken from another container: its volume must still be there
        if m.source and volumes.find(m.source) is None:
            raise ConflictError(f"volume {m.source} at {m.target} has been removed")
        return m
    volume = volumes.find(m.source) if m.source else None
    if volume is None:
        labels = parse_pairs(m.volume_labels, "volume-label")
        options = parse_pairs(m.volume_options, "--opt")
        device = check_options(options, "volume-opt")
        owner = None if m.source else plan.container_id
        volume, _ = volumes.create_locked(
            m.source, labels, options, device, owner, description.auto_remove, False
        )
        plan.made.append(volume.name)
    if not m.nocopy and layers:
        fill(layers, m.target, volume.data)
    return replace(m, source=volume.name, host_path=str(volume.data))


def _bind_source_kind(m: Mount) -> str:
    import os
    import stat

    assert m.source is not None
    try:
        st = os.stat(m.source)
    except FileNotFoundError:
        if not m.create_host_path:
            raise UserError(
                f"bind mount {m.source}:{m.target}: {m.source} does not exist "
                "(make it first, or ask for it to be made: bind-create-host-path)"
            ) from None
        try:
            os.makedirs(m.source, 0o755, exist_ok=True)
        except OSError as exc:
            raise UserError(f"bind mount {m.source}: cannot make it: {exc.strerror}") from None
        return "dir"
    except OSError as exc:
        raise UserError(f"bind mount {m.source}:{m.target}: {exc.strerror}") from None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def _mismatch(m: Mount, kind: str, image: str) -> str:
    want = "a file" if kind == "dir" else "a folder"
    return f"mount at {m.target}: image {image} has {_article(kind)} there, where {want} is needed"


def _article(kind: str) -> str:
    return "a folder" if kind == "dir" else "a file"


def check_sources(record: dict[str, Any], name: str) -> None:
    """Before a start: every volume the container mounts must still exist (``volume rm -f``
    may have removed one); one clear error rather than the runtime's."""
    import os

    for raw in [*(record.get("mounts") or ()), *(record.get("attached") or ())]:
        m = Mount.from_record(raw)
        if m.type == "volume" and m.host_path and not os.path.isdir(m.host_path):
            raise ConflictError(
                f"container {name} mounts volume {m.source} at {m.target}, which has been "
                f"removed: make it again (orchestrator volume create {m.source}) or remove "
                "the container"
            )
