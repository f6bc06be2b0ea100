"""The build cache: one JSON record per step, keyed by what the step's result depends on.

    cache = BuildCache(root)                      # <root>/build-cache/
    key = cache.key(parent=state.digest, instruction="RUN make", files=plan.digest())
    hit = cache.get(key)                          # the image state after the step, or None
    cache.put(key, new_state.to_json())

The key is the sha256 of the parent image state (its config, history included, and layer
chain), the instruction after substitution, the digests of the files it reads (COPY/ADD
sources with their modes and owners) and, for RUN, the build arguments in its environment.
A record is the whole image state after the step, so a hit needs nothing recomputed and a
rebuild where every step hits gives the same config, hence the same image id. Records are
hints: the builder checks that their layers are still in the image store before using one.
Each record is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

CACHE_VERSION = 1


def canonical(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def cache_dir(root: Path) -> Path:
    return root / "build-cache"


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.directory = cache_dir(root)

    @staticmethod
    def key(**material: Any) -> str:
        return hashlib.sha256(canonical({"v": CACHE_VERSION, **material})).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / "steps" / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None  # a torn or foreign file: a miss, rewritten by the next put
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                f.write(canonical(value))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def clear(self) -> int:
        """Forget every record; returns how many there were."""
        import shutil

        steps = self.directory / "steps"
        count = sum(1 for _ in steps.glob("*/*.json")) if steps.is_dir() else 0
        shutil.rmtree(steps, ignore_errors=True)
        return count

    def tmp_root(self) -> Path:
        """Where builds keep their working directories (removed when each build ends)."""
        path = self.directory / "tmp"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.collect_stale(path)
        return path

    def collect_stale(self, tmp: Path) -> None:
        """Remove what killed builds left: their step containers (a runtime state whose bundle
        lies in their folder), then the folder (named ``b-<pid>-<start>-...``: gone)."""
        from runtime.image.store import _owner_alive

        stale = [p for p in tmp.iterdir() if not _owner_alive(p.name)]
        if not stale:
            return
        import shutil

        from runtime.api import Runtime
        from runtime.errors import Error

        runtime = Runtime(self.directory.parent / "runtime", fork_server=True)
        for current in runtime.list():
            if current.id.startswith("build-") and any(
                current.bundle.startswith(f"{p}/") for p in stale
            ):
                try:
                    runtime.delete(current.id, force=True)
                except Error:
                    return  # try again next time rather than remove what still runs
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
