"""Where the orchestrator keeps its state.

Everything lives under one root: ``--root``, else ``$ORCHESTRATOR_ROOT``, else
``/var/lib/orchestrator``. Tests point it at a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = "/var/lib/orchestrator"


def state_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).absolute()
    return Path(os.environ.get("ORCHESTRATOR_ROOT") or DEFAULT_ROOT).absolute()


def images_dir(root: Path) -> Path:
    return root / "images"


def containers_dir(root: Path) -> Path:
    return root / "containers"


def mountpoints_dir(root: Path) -> Path:
    """The images' shared mount-point layers (orchestrator.mountpoints)."""
    return root / "mountpoints"


def runtime_dir(root: Path) -> Path:
    """The runtime's own state (what ``python -m runtime --root`` points at)."""
    return root / "runtime"


def volumes_dir(root: Path) -> Path:
    """Named and anonymous volumes: ``<name>/volume.json`` and ``<name>/_data``."""
    return root / "volumes"
