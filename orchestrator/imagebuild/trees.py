"""Read-only file trees a build reads from: the context directory and an image's layer stack.

    ctx = ContextTree(Path("."), IgnoreRules.parse(""))
    real = ctx.resolve("src/app.py")            # symlinks followed inside the tree only
    layers = LayerTree([Path(".../l/abc"), ...])   # lowest first, as ImageStore.layer_dirs
    layers.lstat("etc/passwd"), layers.listdir("etc"), layers.host_path("etc/passwd")

Paths are relative to the tree's root, ``/``-separated, cleaned. ``resolve`` follows symlinks the
way a chroot would, except that in the context a link that leads outside is an error
(``Escape``), never silently clamped: what a Dockerfile reads must come from the context.
``LayerTree`` is the merged view overlayfs would show (whiteouts hide, opaque directories stop
the lower layers) without mounting anything.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from orchestrator.imagebuild.ignore import IgnoreRules, clean

MAX_SYMLINKS = 40


class Escape(Exception):
    """A path leads outside its tree (``..``, or a symlink pointing out)."""


class TreeError(Exception):
    """A path does not exist or is not what is needed."""


def split(path: str) -> list[str]:
    cleaned = clean("/" + path)
    return [p for p in cleaned.split("/") if p]


class FileTree:
    """The operations the copier needs. Paths are relative, cleaned and already resolved."""

    def lstat(self, rel: str) -> os.stat_result | None:
        raise NotImplementedError

    def listdir(self, rel: str) -> list[str]:
        raise NotImplementedError

    def host_path(self, rel: str) -> Path:
        """Where the entry's bytes are, to open with O_NOFOLLOW."""
        raise NotImplementedError

    def readlink(self, rel: str) -> str:
        return os.readlink(self.host_path(rel))

    def excluded(self, rel: str) -> bool:
        return False

    def may_include_below(self, rel: str) -> bool:
        return False

    def escapes(self, target: str) -> bool:
        """Whether following a symlink to ``target`` is refused (the context's rule)."""
        return False

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """``path`` with every symlink along it followed inside the tree."""
        todo = split(path)
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            current = "/".join([*done, part])
            st = self.lstat(current)
            if st is not None and stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise TreeError(f"{path}: too many levels of symbolic links")
                target = self.readlink(current)
                if target.startswith("/"):
                    if self.escapes(target):
                        raise Escape(f"{path}: symlink /{current} points outside ({target})")
                    done = []
                    todo = split(target) + todo
                    continue
                joined = clean("/".join([*done, target]))
                if joined == ".." or joined.startswith("../"):
                    if self.escapes(joined):
                        raise Escape(f"{path}: symlink /{current} points outside ({target})")
                    joined = clean("/" + joined).lstrip("/")
                done = []
                todo = [p for p in joined.split("/") if p and p != "."] + todo
                continue
            done.append(part)
        return "/".join(done)


class ContextTree(FileTree):
    def __init__(self, root: Path, ignore: IgnoreRules) -> None:
        self.root = root.resolve()
        self.ignore = ignore

    def lstat(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(self.root / rel) if rel else os.lstat(self.root)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def listdir(self, rel: str) -> list[str]:
        return sorted(os.listdir(self.root / rel if rel else self.root))

    def host_path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.ignore.excluded(rel)

    def may_include_below(self, rel: str) -> bool:
        return self.ignore.may_include_below(rel)

    def escapes(self, target: str) -> bool:
        return True  # absolute or upward links lead out of the context


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class LayerTree(FileTree):
    """The merged view of extracted layers (lowest first), as overlayfs would present it."""

    def __init__(self, layers: list[Path]) -> None:
        self.top_first = list(reversed(layers))

    def _find(self, rel: str) -> tuple[Path, os.stat_result] | None:
        parts = split(rel)
        if not parts:
            return (self.top_first[0], os.lstat(self.top_first[0])) if self.top_first else None
        for layer in self.top_first:
            current = layer
            blocked = False
            for i, part in enumerate(parts):
                path = current / part
                st = _lstat(path)
                if st is None:
                    break
                if _whiteout(st):
                    return None
                if i == len(parts) - 1:
                    return path, st
                if not stat.S_ISDIR(st.st_mode):
                    return None  # a non-directory here hides everything below it
                if _opaque(path):
                    blocked = True
                current = path
            if blocked:
                return None
        return None

    def lstat(self, rel: str) -> os.stat_result | None:
        if not self.top_first:
            return None
        found = self._find(rel)
        return found[1] if found else None

    def host_path(self, rel: str) -> Path:
        found = self._find(rel)
        if found is None:
            raise TreeError(f"/{rel}: no such file or directory")
        return found[0]

    def listdir(self, rel: str) -> list[str]:
        parts = split(rel)
        names: set[str] = set()
        hidden: set[str] = set()
        for layer in self.top_first:
            current = layer
            state = "dir"
            blocked = False
            for part in parts:
                path = current / part
                st = _lstat(path)
                if st is None:
                    state = "missing"
                    break
                if _whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    state = "stop"
                    break
                current = path
                blocked = blocked or _opaque(path)
            if state == "stop":
                break
            if state == "dir":
                for name in os.listdir(current):
                    if name in names or name in hidden:
                        continue
                    if _whiteout(os.lstat(current / name)):
                        hidden.add(name)
                    else:
                        names.add(name)
            if blocked:
                break  # an opaque directory on the way hides the lower layers
        return sorted(names)
