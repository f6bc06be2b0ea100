"""A container's working directory made when it is missing from its image (``-w /missing``),
as Docker makes it: owned by root, mode 0755, created in the container's own writable layer
when the container is made.

The path is looked up through the image's layers as overlayfs would see it (the topmost entry
of each component wins; a whiteout hides it; an opaque directory hides what lies below). Only
missing components are made; a component that exists as a directory in a lower layer is made
in the upper layer too (overlayfs needs the parents there) with that directory's owner, mode and
times, so that the merged view does not change. A symlink or a file on the way is left alone:
the runtime then names the problem at the start.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path


def ensure(workdir: str, upper: Path, layers_lowest_first: Sequence[Path]) -> None:
    parts = [p for p in workdir.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return
    layers = list(reversed(layers_lowest_first))  # topmost first, as overlayfs looks
    made_from: list[os.stat_result | None] = []
    for i in range(len(parts)):
        relative = "/".join(parts[: i + 1])
        found = _topmost(relative, layers)
        if found is None:
            made_from += [None] * (len(parts) - i)
            break
        info, index = found
        if not stat.S_ISDIR(info.st_mode):
            return  # a file or a symlink: not ours to replace
        made_from.append(info)
        if _opaque(layers[index] / relative):
            layers = layers[: index + 1]
    if all(info is not None for info in made_from):
        return  # it exists already
    current = upper
    for part, lower in zip(parts, made_from, strict=True):
        current = current / part
        if current.is_dir():
            continue
        current.mkdir(mode=0o755)
        if lower is not None:  # a lower directory: keep its look in the merged view
            os.chown(current, lower.st_uid, lower.st_gid)
            os.chmod(current, stat.S_IMODE(lower.st_mode))
            os.utime(current, ns=(lower.st_atime_ns, lower.st_mtime_ns))
        else:
            os.chmod(current, 0o755)


def _topmost(relative: str, layers: list[Path]) -> tuple[os.stat_result, int] | None:
    for index, layer in enumerate(layers):
        path = layer / relative
        if _whited_out(path):
            return None
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            return None  # an overlay whiteout
        return info, index
    return None


def _whited_out(path: Path) -> bool:
    return os.path.lexists(path.parent / f".wh.{path.name}")


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False
