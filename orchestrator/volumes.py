"""Named and anonymous volumes under the state root.

    <root>/volumes/<name>/volume.json   name, driver, labels, options, created, and for an
                                        anonymous volume its owner (the container made with it)
    <root>/volumes/<name>/_data         the data (what containers bind-mount)

A volume appears whole or not at all: it is made in ``.new-*`` and renamed into place. It goes
the same way: renamed to ``.trash-*``, then removed. What a crash leaves of either is removed
later (trash by the next listing, an unfinished creation by the next one, under the lock). Removal walks by descriptor and never follows a
symlink (shutil.rmtree on Linux), so nothing a container put in a volume leads it outside.

A volume is *in use* while a container record (any state, being made too) names it: ``rm``
refuses then unless forced, ``prune`` leaves it. An anonymous volume made for a container run
with ``--rm`` goes once that container is gone (``collect``); ``rm -v`` removes a container's
anonymous volumes.

Local driver only. ``--opt type=none,o=bind,device=DIR`` (Docker's local-driver idiom) makes a
volume whose data is the host folder DIR; other filesystems would need a mount on the host,
which this project never makes, and are refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ConflictError, NotFoundError, UserError
from orchestrator.mountspec import check_volume_name
from orchestrator.paths import containers_dir, volumes_dir

RECORD = "volume.json"
DATA = "_data"
RECORD_VERSION = 1


@dataclass(frozen=True)
class Volume:
    name: str
    directory: Path
    record: dict[str, Any]

    @property
    def data(self) -> Path:
        """The folder containers mount: ``_data``, or the host folder of an ``o=bind`` volume."""
        device = self.record.get("device")
        return Path(device) if device else self.directory / DATA

    @property
    def anonymous(self) -> bool:
        return bool(self.record.get("anonymous"))

    @property
    def owner(self) -> str | None:
        owner = self.record.get("owner")
        return str(owner) if owner else None

    def inspect(self) -> dict[str, Any]:
        """Docker's ``volume inspect`` fields, and ours (Anonymous, Owner)."""
        return {
            "Name": self.name,
            "Driver": "local",
            "Mountpoint": str(self.data),
            "CreatedAt": self.record.get("created"),
            "Labels": dict(self.record.get("labels") or {}),
            "Options": dict(self.record.get("options") or {}),
            "Scope": "local",
            "Anonymous": self.anonymous,
            "Owner": self.owner,
        }


def check_options(options: Mapping[str, str], what: str = "--opt") -> str | None:
    """The host folder of a ``type=none,o=bind,device=DIR`` volume; None without options."""
    if not options:
        return None
    unknown = sorted(set(options) - {"type", "o", "device"})
    if unknown:
        raise UserError(f"{what} {unknown[0]}: the local driver takes type, o and device")
    kind, flags, device = options.get("type"), options.get("o", ""), options.get("device")
    if kind != "none" or "bind" not in flags.split(",") or not device:
        raise UserError(
            f"{what} type={kind}: only type=none,o=bind,device=DIR is supported (another "
            "filesystem would have to be mounted on the host)"
        )
    if not os.path.isabs(device) or not os.path.isdir(device):
        raise UserError(f"{what} device={device}: not an existing absolute folder")
    return os.path.normpath(device)


def parse_pairs(items: list[str] | tuple[str, ...], what: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or (not sep and what == "--opt"):
            raise UserError(f"{what} {item!r}: use KEY=VALUE")
        result[key] = value
    return result


class Volumes:
    """The volumes under one state root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory = volumes_dir(root)

    def lock(self) -> AbstractContextManager[None]:
        """Held while volumes are made, removed, or a container's are resolved."""
        from runtime.filelock import exclusive

        self._ensure_directory()
        return exclusive(self.directory / ".lock")

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    # lookup ------------------------------------------------------------------------------------

    def find(self, name: str) -> Volume | None:
        if not name or name.startswith(".") or "/" in name:
            return None
        directory = self.directory / name
        try:
            if not directory.is_dir() or directory.is_symlink():
                return None
            record = json.loads((directory / RECORD).read_text())
        except (OSError, ValueError):
            return None
        return Volume(name, directory, record)

    def get(self, name: str) -> Volume:
        volume = self.find(name)
        if volume is None:
            raise NotFoundError(f"no such volume: {name}")
        return volume

    def all(self) -> list[Volume]:
        """Every volume, by name (leftovers of interrupted removals are removed on the way)."""
        try:
            entries = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        result = []
        for name in entries:
            if name.startswith(".trash-"):
                _remove_tree(self.directory / name)
            volume = self.find(name)
            if volume is not None:
                result.append(volume)
        return result

    def users(self, name: str) -> list[str]:
        """Names of the containers whose records use volume ``name``."""
        return [c.name for c in _containers(self.root) if name in volumes_of(c.record)]

    # create ------------------------------------------------------------------------------------

    def create(
        self,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        *,
        owner: str | None = None,
        auto_remove: bool = False,
        exist_ok: bool = False,
    ) -> tuple[Volume, bool]:
        """Make volume ``name`` (None: an anonymous one, owned by container ``owner``); the
        volume and whether it was made now (False: it existed and ``exist_ok``)."""
        device = check_options(options or {})
        with self.lock():
            return self.create_locked(name, labels, options, device, owner, auto_remove, exist_ok)

    def create_locked(
        self,
        name: str | None,
        labels: Mapping[str, str] | None,
        options: Mapping[str, str] | None,
        device: str | None,
        owner: str | None,
        auto_remove: bool,
        exist_ok: bool,
    ) -> tuple[Volume, bool]:
        """``create`` for a caller that holds ``lock()``."""
        from runtime.logs import timestamp
        from runtime.state import write_json_atomic

        anonymous = name is None
        name = name or secrets.token_hex(32)
        check_volume_name(name, "volume name")
        existing = self.find(name)
        if existing is not None:
            if exist_ok:
                return existing, False
            raise ConflictError(f"volume {name} already exists")
        self._ensure_directory()
        self._remove_leftovers(".new-")  # (a creation cut short: none runs, we hold the lock)
        if (self.directory / name).exists() or (self.directory / name).is_symlink():
            raise ConflictError(f"{self.directory / name} exists and is not a volume")
        staging = self.directory / f".new-{secrets.token_hex(8)}"
        staging.mkdir(mode=0o700)
        try:
            if device is None:
                (staging / DATA).mkdir(mode=0o755)
            record = {
                "version": RECORD_VERSION,
                "name": name,
                "driver": "local",
                "labels": dict(labels or {}),
                "options": dict(options or {}),
                "device": device,
                "created": timestamp(),
                "anonymous": anonymous,
                "owner": owner,
                "auto_remove": auto_remove,
            }
            write_json_atomic(staging / RECORD, record)
            os.rename(staging, self.directory / name)
        except BaseException:
            _remove_tree(staging)
            raise
        return Volume(name, self.directory / name, record), True

    # remove ------------------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False) -> None:
        """Remove volume ``name``; in use, only with ``force`` (its containers then find it
        gone when they start again, and say so)."""
        with self.lock():
            volume = self.get(name)
            users = self.users(name)
            if users and not force:
                raise ConflictError(
                    f"volume {name} is in use by {', '.join(sorted(users))}: "
                    "remove them first, or use -f"
                )
            trash = self._discard(volume)
        _remove_tree(trash)

    def remove_unused(self, names: list[str], made_for: str | None = None) -> list[str]:
        """Remove those of ``names`` that no container uses; the ones removed. ``made_for``:
        the container they were made for, whose creation failed (its record does not count)."""
        trash = []
        with self.lock():
            used = _used_volumes(self.root, made_for)
            for name in names:
                volume = self.find(name)
                if volume is None or name in used:
                    continue
                if volume.owner != made_for and self._owner_alive(volume):
                    continue
                trash.append((name, self._discard(volume)))
        for _, path in trash:
            _remove_tree(path)
        return [name for name, _ in trash]

    def prune(self, everything: bool = False) -> list[str]:
        """Remove unused anonymous volumes (``everything``: unused named ones too)."""
        names = [v.name for v in self.all() if everything or v.anonymous]
        return self.remove_unused(names)

    def collect(self) -> list[str]:
        """Remove anonymous volumes made for ``--rm`` containers that are gone."""
        names = [v.name for v in self.all() if v.anonymous and v.record.get("auto_remove")]
        return self.remove_unused(names) if names else []

    def remove_anonymous(self, container_id: str, record: Mapping[str, Any]) -> list[str]:
        """``rm -v``: the anonymous volumes the container was made with (unless another
        container uses them too)."""
        names = []
        for name in volumes_of(record):
            volume = self.find(name)
            if volume is not None and volume.anonymous and volume.owner == container_id:
                names.append(name)
        return self.remove_unused(names) if names else []

    def _owner_alive(self, volume: Volume) -> bool:
        """An anonymous volume's container may still be being made (not yet in its record)."""
        owner = volume.owner
        return bool(owner) and (containers_dir(self.root) / str(owner)).is_dir()

    def _remove_leftovers(self, prefix: str) -> None:
        for name in os.listdir(self.directory):
            if name.startswith(prefix):
                _remove_tree(self.directory / name)

    def _discard(self, volume: Volume) -> Path:
        """Rename the volume out of sight (under the lock); the caller removes the result."""
        trash = self.directory / f".trash-{secrets.token_hex(8)}"
        os.rename(volume.directory, trash)
        return trash


def volumes_of(record: Mapping[str, Any]) -> set[str]:
    """The volume names a container record uses: its resolved mounts, the ones attached
    while it ran, and the ones its options name (a record still being made has only those)."""
    options = record.get("options") or {}
    raws = [
        *(record.get("mounts") or ()),
        *(record.get("attached") or ()),
        *(options.get("mounts") or ()),
    ]
    return {
        str(m["source"])
        for m in raws
        if isinstance(m, dict) and m.get("type") == "volume" and m.get("source")
    }


def _used_volumes(root: Path, besides: str | None = None) -> set[str]:
    used: set[str] = set()
    for container in _containers(root):
        if container.id != besides:
            used |= volumes_of(container.record)
    return used


def _containers(root: Path) -> Iterator[Any]:
    from orchestrator.containers import Containers

    yield from Containers(root).all()


def _remove_tree(path: Path) -> None:
    """Remove ``path`` without following any symlink in it (or as it)."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
            return
    except OSError:
        return
    assert shutil.rmtree.avoids_symlink_attacks
    shutil.rmtree(path, ignore_errors=True)
