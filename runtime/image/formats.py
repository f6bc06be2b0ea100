"""Archive formats: detect, import and save (filled in below)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.image.model import Image, InvalidImage

if TYPE_CHECKING:
    from runtime.image.store import ImageStore


def import_path(store: ImageStore, path: Path, ref: str | None) -> list[Image]:
    return [store.import_rootfs_tar(path, ref)]


def save(store: ImageStore, refs: Sequence[str], out: Path, format: str) -> None:
    raise InvalidImage("save is not implemented yet")
