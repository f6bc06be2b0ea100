"""Leases: files under ``<images>/leases`` naming the digests a live process relies on.

A build's step layers and a pull's blobs exist before any image names them; a lease keeps
``rmi`` and ``prune`` in other processes from removing them until they are recorded. A lease
whose process has died (its pid gone, or reused by a process started at another time) holds
nothing and is removed by the next reader.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path

__all__ = ["Lease", "held_digests"]


class Lease:
    """One process's lease: ``add`` rewrites its file with the digests named so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: set[str] = set()
        self._lock = threading.Lock()
        self._write()

    @classmethod
    def create(cls, directory: Path) -> Lease:
        """A new, empty lease in ``directory``, under a name no other lease has."""
        directory.mkdir(exist_ok=True)
        return cls(directory / f"{os.getpid()}-{secrets.token_hex(4)}.json")

    def add(self, *digests: str) -> None:
        with self._lock:
            new = set(digests) - self.items
            if new:
                self.items |= new
                self._write()

    def _write(self) -> None:
        record = {
            "pid": os.getpid(),
            "start": _process_started(os.getpid()),
            "items": sorted(self.items),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.path)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def held_digests(directory: Path) -> set[str]:
    """Digests held by leases of live processes; a dead process's lease is removed."""
    held: set[str] = set()
    if not directory.is_dir():
        return held
    for path in directory.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _process_started(record.get("pid")) == record.get("start"):
            held |= set(record.get("items", []))
        else:
            path.unlink(missing_ok=True)
    return held


def _process_started(pid: object) -> int | None:
    # Loaded here: only the commands that lease or collect need the container state module.
    from runtime.state import process_start_time

    return process_start_time(pid) if isinstance(pid, int) and pid > 0 else None
