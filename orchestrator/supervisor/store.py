"""The supervisor's database: an SQLite file in the state root, written in transactions.

What it keeps is what the kernel cannot tell: which projects should be up and with which
files, environment and options; each container's restart history (its runs, whether it was
stopped by hand) and health; the boot the records belong to. What runs is always asked of
the runtime (pid and start time), never believed from here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,           -- JSON: files, environ, profiles, workdir, options
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    service TEXT NOT NULL,
    replica INTEGER NOT NULL,
    restart_count INTEGER NOT NULL DEFAULT 0,
    last_exit INTEGER,
    manual_stop INTEGER NOT NULL DEFAULT 0,
    health TEXT,
    runs TEXT NOT NULL DEFAULT '[]'  -- JSON: recent runs for the restart policy
);
CREATE INDEX IF NOT EXISTS containers_project ON containers (project);
"""


@dataclass(frozen=True)
class ProjectSpec:
    """What ``up`` asked for: enough to load the same stack again after a restart."""

    name: str
    files: tuple[str, ...]
    workdir: str
    environ: dict[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    scale: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "files": list(self.files),
                "workdir": self.workdir,
                "environ": self.environ,
                "profiles": list(self.profiles),
                "scale": self.scale,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ProjectSpec:
        raw = json.loads(text)
        return cls(
            name=str(raw["name"]),
            files=tuple(raw.get("files") or ()),
            workdir=str(raw.get("workdir") or "."),
            environ=dict(raw.get("environ") or {}),
            profiles=tuple(raw.get("profiles") or ()),
            scale={str(k): int(v) for k, v in (raw.get("scale") or {}).items()},
        )


@dataclass
class ContainerRow:
    id: str
    project: str
    service: str
    replica: int
    restart_count: int = 0
    last_exit: int | None = None
    manual_stop: bool = False
    health: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)


class Store:
    """The database. Each call is its own transaction; a crash leaves the last one whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # one connection, used from trio's worker threads too
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- meta ------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- projects --------------------------------------------------------------------------------

    def put_project(self, spec: ProjectSpec) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO projects VALUES (?, ?, ?)",
                (spec.name, spec.to_json(), time.time()),
            )

    def project(self, name: str) -> ProjectSpec | None:
        with self._lock:
            row = self._db.execute("SELECT spec FROM projects WHERE name = ?", (name,)).fetchone()
        return ProjectSpec.from_json(row[0]) if row else None

    def projects(self) -> list[ProjectSpec]:
        with self._lock:
            rows = self._db.execute("SELECT spec FROM projects ORDER BY name").fetchall()
        return [ProjectSpec.from_json(r[0]) for r in rows]

    def drop_project(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM projects WHERE name = ?", (name,))
            db.execute("DELETE FROM containers WHERE project = ?", (name,))

    # -- containers ------------------------------------------------------------------------------

    def container(self, container_id: str) -> ContainerRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, project, service, replica, restart_count, last_exit, manual_stop,"
                " health, runs FROM containers WHERE id = ?",
                (container_id,),
            ).fetchone()
        if row is None:
            return None
        return ContainerRow(
            row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7], json.loads(row[8])
        )

    def container_ids(self, project: str) -> set[str]:
        """The ids of the containers made for ``project`` (its broken ones too: their records
        cannot say whose they are, this can)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM containers WHERE project = ?", (project,)
            ).fetchall()
        return {str(r[0]) for r in rows}

    def ensure_container(self, container_id: str, project: str, service: str, replica: int) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO containers (id, project, service, replica) VALUES (?,?,?,?)",
                (container_id, project, service, replica),
            )

    def update_container(self, row: ContainerRow) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO containers VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    row.id,
                    row.project,
                    row.service,
                    row.replica,
                    row.restart_count,
                    row.last_exit,
                    int(row.manual_stop),
                    row.health,
                    json.dumps(row.runs[-20:]),
                ),
            )

    def set_manual_stop(self, container_id: str, stopped: bool) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE containers SET manual_stop = ? WHERE id = ?", (int(stopped), container_id)
            )

    def set_health(self, container_id: str, health: str | None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE containers SET health = ? WHERE id = ?", (health, container_id))

    def forget_containers(self) -> None:
        """Every container's history (after a reboot, none of them runs): restart counts,
        exits and health start over; a stop by hand is remembered (``unless-stopped`` keeps
        such a container stopped)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE containers SET restart_count = 0, last_exit = NULL, health = NULL,"
                " runs = '[]'"
            )

    def forget_container(self, container_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))
