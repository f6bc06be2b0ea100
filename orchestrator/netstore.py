"""The networks' records: one JSON file under the state root, changed only under its flock.

``<root>/networks/networks.json``::

    networks   id -> {id, name, bridge, subnet, gateway, internal, labels, created, state}
               state "creating" or "removing" (with the creator's pid and start time) while a
               command works on it: if that command dies, the next one finishes the job
    last       network id -> the last address handed out there (addresses go round)
    endpoints  container id -> [{network, ip, mac, aliases, ifname, veth}], in interface order:
               the container's leases, kept while its directory exists
    hosts      container id -> {name, hostname, domainname, project, service, exposed, links,
               extra_hosts}: what its own and its peers' hosts files need
    ports      container id -> [published port bindings]

A lease is written before anything is made for it, and the name of a veth before the veth:
whatever a crash leaves, the records name it. Leases are keyed by container id, and the whole
file is read, changed and replaced under the lock, so two commands never hand out one address.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime import state as rstate
from runtime.filelock import exclusive

VERSION = 1


def empty() -> dict[str, Any]:
    return {
        "version": VERSION,
        "networks": {},
        "last": {},
        "endpoints": {},
        "hosts": {},
        "ports": {},
    }


class Store:
    def __init__(self, root: Path) -> None:
        self.directory = root / "networks"
        self.path = self.directory / "networks.json"
        self._last: str | None = None  # the records as on disk, during an edit

    def read(self) -> dict[str, Any]:
        """The records as last written (the file is replaced whole: never half of one)."""
        return self._read()[0]

    def _read(self) -> tuple[dict[str, Any], str | None]:
        """The records and the text they were read from (None: none on disk, or unreadable)."""
        try:
            text = self.path.read_text()
            data = json.loads(text)
        except (FileNotFoundError, ValueError):
            return empty(), None
        for key, value in empty().items():
            data.setdefault(key, value)
        return dict(data), text

    def save(self, data: dict[str, Any]) -> None:
        """Write ``data`` now (in the middle of an ``edit``: before making what it names);
        not at all when it is what was last read or written."""
        text = json.dumps(data)
        if text == self._last:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        self._last = text

    @contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """The records under the lock; saved when the block ends without an exception (what
        the block saved itself stays saved either way)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with exclusive(self.directory / ".lock"):
            # (the text read stands for "unchanged": one encoding per edit, not two; records
            # that needed a default key added are written once more, which is harmless)
            data, raw = self._read()
            self._last = raw if raw is not None else json.dumps(data)
            try:
                yield data
                self.save(data)
            finally:
                self._last = None


def creator() -> list[int | None]:
    pid = os.getpid()
    return [pid, rstate.process_start_time(pid)]


def creator_gone(record: dict[str, Any]) -> bool:
    who = record.get("creator")
    if not isinstance(who, list) or len(who) != 2 or not isinstance(who[0], int):
        return True
    return bool(rstate.process_start_time(who[0]) != who[1])
