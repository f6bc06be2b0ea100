"""``orchestrator commit``: a container's writable layer as a new image.

    image = commit_container(root, "web", "web:snapshot", message="after setup")

The container's upper directory (``<root>/containers/<id>/upper``, in overlayfs's format) becomes
one more layer on top of the image it was made from (``ImageStore.commit_layer``: whiteouts
turn back into ``.wh.`` entries, opaque directories into ``.wh..wh..opq``). The new image's
config is the container's: its command, entrypoint, environment, user, working directory,
labels and stop signal, as given at ``create``/``run`` over the image's own. A running container
is frozen while its layer is read. The mount points the runtime made for the container's own
files (``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``) and for ``/proc``, ``/sys``,
``/dev``, when the image did not have them and they are still empty, are left out.
"""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

from orchestrator.errors import NotFoundError
from orchestrator.imagebuild.trees import LayerTree
from orchestrator.paths import images_dir
from runtime.errors import NotFound
from runtime.image.model import Image

RUNTIME_MOUNTPOINTS = (
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "proc",
    "sys/fs/cgroup",
    "sys",
    "dev",
)


def commit_container(
    root: Path,
    container_ref: str,
    ref: str | None,
    *,
    message: str | None = None,
    author: str | None = None,
) -> Image:
    from orchestrator.bundle import merge_env
    from orchestrator.containers import Containers
    from runtime.image.store import ImageStore

    containers = Containers(root)
    container = containers.get(container_ref)
    store = ImageStore(images_dir(root))
    image_id = str(container.record.get("image_id") or "")
    try:
        image = store.resolve(image_id)
    except NotFound:
        raise NotFoundError(
            f"the image of container {container.name} ({image_id[:19]}) is no longer in the store"
        ) from None
    options = container.options
    config = copy.deepcopy(image.run_config)
    if options.entrypoint is not None:
        config["Entrypoint"] = list(options.entrypoint)
        if not options.command:
            config.pop("Cmd", None)
    if options.command:
        config["Cmd"] = list(options.command)
    config["Env"] = merge_env(image.env, options.env)
    if options.user is not None:
        config["User"] = options.user
    if options.workdir:
        config["WorkingDir"] = options.workdir
    if options.labels:
        config["Labels"] = {**(config.get("Labels") or {}), **options.labels}
    if options.stop_signal:
        config["StopSignal"] = options.stop_signal
    upper = container.directory / "upper"
    exclude = _runtime_mountpoints(upper, LayerTree(store.layer_dirs(image)))
    history: dict[str, Any] = {"created_by": f"commit {container.name}"}
    if message:
        history["comment"] = message
    if author:
        history["author"] = author
    paused = _pause(containers, container)
    try:
        new = store.commit_layer(upper, image, config, ref, history=history, exclude=exclude)
    finally:
        if paused:
            containers.runtime.resume(container.id)
    return new


def _runtime_mountpoints(upper: Path, image: LayerTree) -> list[str]:
    found = []
    for rel in RUNTIME_MOUNTPOINTS:
        if image.lstat(rel) is not None:
            continue
        try:
            st = os.lstat(upper / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        empty_file = stat.S_ISREG(st.st_mode) and st.st_size == 0
        empty_dir = stat.S_ISDIR(st.st_mode) and all(
            f"{rel}/{name}" in found for name in os.listdir(upper / rel)
        )
        if empty_file or empty_dir:
            found.append(rel)
    return found


def _pause(containers: Any, container: Any) -> bool:
    """Freeze a running container while its layer is read; True if it was frozen here."""
    try:
        current = containers.runtime.state(container.id)
    except NotFound:
        return False
    if current.status != "running":
        return False
    containers.runtime.pause(container.id)
    return True
