"""A read-only layer, one per image, that holds the mount points every container needs.

Each container gets /etc/hosts, /etc/hostname and /etc/resolv.conf bind-mounted from its own
directory (orchestrator.bundle). Where the image has no such files, the container's init would
create them, copying /etc up into the container's writable layer on the way: four new files
per container, and an overlay copy-up, for files whose content is never seen. Docker keeps them
in a per-container "init" layer; here one layer, made once per image and shared, sits on top of
the image's layers. Its /etc takes the image's owner and mode (in an overlay the topmost
directory's are the ones shown); it is left out where the image's /etc is not a directory (a
symlink, say), and the init makes the mount points as before.

    <state root>/mountpoints/<image id>/etc/{hosts,hostname,resolv.conf}
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

FILES = ("hosts", "hostname", "resolv.conf")


def layer(root: Path, image_id: str, lowers: Sequence[str]) -> str | None:
    """The layer for the image whose layers are ``lowers`` (lowest first), made if missing
    under the state root ``root``; None where the image's /etc is not a directory."""
    from orchestrator.paths import mountpoints_dir

    usable, etc = _image_etc(lowers)
    if not usable:
        return None
    path = mountpoints_dir(root) / image_id.removeprefix("sha256:")
    if path.is_dir():
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".new-{secrets.token_hex(6)}"
    try:
        (staging / "etc").mkdir(parents=True)
        if etc is not None:
            os.chown(staging / "etc", etc.st_uid, etc.st_gid)
            os.chmod(staging / "etc", stat.S_IMODE(etc.st_mode))
        for name in FILES:
            (staging / "etc" / name).touch(0o644)
        if etc is not None:
            os.utime(staging / "etc", ns=(etc.st_atime_ns, etc.st_mtime_ns))
        with contextlib.suppress(OSError):
            os.rename(staging, path)  # (another creation made it first: theirs is the same)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(path) if path.is_dir() else None


def _image_etc(lowers: Sequence[str]) -> tuple[bool, os.stat_result | None]:
    """The image's /etc as the overlay would show it: (True, its stat) for a directory, (True,
    None) when it has none, (False, None) when it is something else."""
    for lower in reversed(lowers):  # (topmost first)
        try:
            info = os.lstat(os.path.join(lower, "etc"))
        except FileNotFoundError:
            continue
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            return True, None  # a whiteout: removed by this layer
        return (True, info) if stat.S_ISDIR(info.st_mode) else (False, None)
    return True, None


def collect(root: Path) -> None:
    """Remove the layers of images that are gone (after ``rmi``, ``image prune``)."""
    from orchestrator.paths import images_dir, mountpoints_dir
    from runtime.image.store import ImageStore

    base = mountpoints_dir(root)
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    present = {image.id.removeprefix("sha256:") for image in ImageStore(images_dir(root)).list()}
    for name in names:
        if name not in present and not name.startswith(".new-"):
            shutil.rmtree(base / name, ignore_errors=True)
