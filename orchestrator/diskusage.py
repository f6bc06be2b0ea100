"""Sizes on disk, as ``system df`` and ``container prune`` report them.

tree_size(Path("/var/lib/orchestrator/volumes/data/_data"))   # bytes
human_size(1234567)                                          # "1.235MB"
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def tree_size(path: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """The apparent size of everything under ``path`` (no symlink followed, no mount point
    crossed, each inode counted once: ``seen`` carries that across calls)."""
    seen = set() if seen is None else seen
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    total = 0
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            if entry.is_dir(follow_symlinks=False):
                if st.st_dev == top.st_dev:
                    stack.append(entry.path)
            else:
                total += st.st_size
    return total


def total_size(paths: Iterable[Path]) -> int:
    seen: set[tuple[int, int]] = set()
    return sum(tree_size(p, seen) for p in paths)


def human_size(n: float) -> str:
    """Docker's sizes: decimal units, four significant digits (``0B``, ``12.3kB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n:.4g}TB"
