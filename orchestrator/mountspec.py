"""The mounts a container asks for, typed, and the parsers of run's flags into them.

    parse_volume("data:/var/lib/db:ro")     -v, Docker's short syntax
    parse_mount("type=tmpfs,dst=/run,tmpfs-size=64m")   --mount, Docker's long form
    parse_tmpfs("/tmp:size=64m,mode=1777")  --tmpfs
    parse_volumes_from("db:ro")             --volumes-from

A stack service's ``volumes``/``tmpfs``/``volumes_from`` become the same types
(``orchestrator.description.from_service``). Pure: nothing here touches the disk. Every error
is a ``UserError`` naming the flag and the value.

Defaults, as Docker has them unless said otherwise: volumes and bind mounts are read-write,
``nosuid`` and ``nodev`` (the issue's safety rule; ``suid``/``dev`` ask otherwise, as Podman
spells it), recursive, ``rprivate``; tmpfs is ``nosuid,nodev,noexec``. A bind source must
exist unless ``create_host_path`` (stack files, ``--mount ...,bind-create-host-path``).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from orchestrator.errors import UserError

MountType = Literal["volume", "bind", "tmpfs"]
PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# runc lets these files of /proc be covered (lxcfs does); the rest of /proc and /sys is the
# runtime's, and so are /dev and what the runtime makes in it.
_PROC_FILES = frozenset(
    "/proc/" + name
    for name in (
        "cpuinfo",
        "diskstats",
        "meminfo",
        "stat",
        "swaps",
        "uptime",
        "loadavg",
        "slabinfo",
        "net/dev",
        "sys/kernel/ns_last_pid",
    )
)
_DEV_OWNED = frozenset(
    "/dev/" + name
    for name in (
        "pts",
        "mqueue",
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "console",
        "ptmx",
        "fd",
        "stdin",
        "stdout",
        "stderr",
        "core",
    )
)


@dataclass(frozen=True)
class Mount:
    """One mount of a container.

    ``source``: a volume's name (type volume; None for an anonymous volume, named when the
    container is made), an absolute host path (bind), None (tmpfs). ``host_path`` is filled in
    when the container is made: the folder the runtime binds (a volume's data)."""

    type: MountType
    target: str
    source: str | None = None
    read_only: bool = False
    # bind
    propagation: str | None = None  # None: rprivate
    recursive: bool = True
    create_host_path: bool = False
    # volume: what a volume made on first use gets, and whether the image's files fill it
    nocopy: bool = False
    volume_labels: tuple[str, ...] = ()  # K=V
    volume_options: tuple[str, ...] = ()  # K=V, as `volume create --opt`
    # tmpfs
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None
    # flags; exec None: the kind's default (noexec for tmpfs only)
    suid: bool = False
    dev: bool = False
    exec: bool | None = None
    host_path: str | None = None

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> Mount:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for key in ("volume_labels", "volume_options"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values)

    @property
    def noexec(self) -> bool:
        return self.exec is False or (self.exec is None and self.type == "tmpfs")


@dataclass(frozen=True)
class VolumesFrom:
    """Every volume and bind mount of ``container``, at the same targets; ``read_only`` None
    keeps each one's own mode."""

    container: str
    read_only: bool | None = None

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def clean_target(target: str, what: str) -> str:
    """``target`` as an absolute, cleaned path, refused where the runtime owns the place (as
    runc refuses it): ``/``, ``/proc``, ``/sys``, ``/dev`` and what the runtime makes there."""
    reason = refused_target(target)
    if reason:
        raise UserError(f"{what}: {reason}")
    return normalize(target)


def normalize(target: str) -> str:
    return "/" + os.path.normpath(target).lstrip("/")


def refused_target(target: str) -> str | None:
    """Why a mount may not go at ``target`` (None when it may)."""
    if not target.startswith("/"):
        return f"mount target {target!r} must be an absolute path"
    if "\0" in target or "\n" in target:
        return f"mount target {target!r} contains a NUL or newline"
    path = normalize(target)
    if path == "/":
        return "cannot mount over the container's root /"
    if path in _PROC_FILES:
        return None
    for tree in ("/proc", "/sys", "/dev"):
        if path == tree or (path.startswith(tree + "/") and tree != "/dev"):
            return f"mount target {path}: {tree} belongs to the runtime"
    if path in _DEV_OWNED or any(path.startswith(p + "/") for p in _DEV_OWNED):
        return f"mount target {path}: the runtime makes it in /dev"
    return None


def check_volume_name(name: str, what: str) -> str:
    if not VOLUME_NAME.match(name):
        raise UserError(
            f"{what}: {name!r} is not a valid volume name "
            "(letters, digits, '_', '.', '-'; at least two characters)"
        )
    return name


# -- -v / --volume ---------------------------------------------------------------------------------

_SHORT_FLAGS = {"suid", "nosuid", "dev", "nodev", "exec", "noexec"}


def parse_volume(text: str, cwd: str | None = None) -> Mount:
    """``-v [SOURCE:]TARGET[:OPTIONS]``: SOURCE a volume name or a host path (absolute, or
    starting with ``.``, made absolute from ``cwd``); no SOURCE is an anonymous volume."""
    what = f"-v {text}"
    parts = text.split(":")
    if len(parts) > 3 or not all(parts[:2]) or (len(parts) == 3 and not parts[2]):
        raise UserError(f"{what}: use [SOURCE:]TARGET[:OPTIONS]")
    if len(parts) == 1:
        return Mount("volume", clean_target(parts[0], what))
    source, target = parts[0], clean_target(parts[1], what)
    options = parts[2].split(",") if len(parts) == 3 else []
    is_bind = source.startswith(("/", "."))
    mount = Mount("bind", target, _host_path(source, cwd)) if is_bind else None
    if mount is None:
        mount = Mount("volume", target, check_volume_name(source, what))
    mode_seen = False
    for opt in options:
        if opt in ("ro", "rw"):
            if mode_seen:
                raise UserError(f"{what}: give ro or rw once")
            mode_seen = True
            mount = replace(mount, read_only=opt == "ro")
        elif opt in ("z", "Z"):
            pass  # SELinux relabelling: this host has no SELinux labels to set
        elif opt in PROPAGATIONS:
            if not is_bind:
                raise UserError(f"{what}: propagation {opt} applies to bind mounts only")
            mount = replace(mount, propagation=opt)
        elif opt == "nocopy":
            if is_bind:
                raise UserError(f"{what}: nocopy applies to volumes only")
            mount = replace(mount, nocopy=True)
        elif opt in _SHORT_FLAGS:
            mount = _with_flag(mount, opt)
        else:
            raise UserError(
                f"{what}: unknown option {opt!r} (ro, rw, z, Z, nocopy, a propagation mode, "
                "suid, dev, exec, noexec)"
            )
    return mount


def _host_path(source: str, cwd: str | None) -> str:
    return os.path.normpath(os.path.join(cwd or os.getcwd(), source))


def _with_flag(mount: Mount, opt: str, on: bool = True) -> Mount:
    """``suid``, ``nodev``, ``exec``...: the flag named, set (or, ``on`` false, its opposite)."""
    if opt.startswith("no"):
        opt, on = opt[2:], not on
    if opt == "suid":
        return replace(mount, suid=on)
    if opt == "dev":
        return replace(mount, dev=on)
    return replace(mount, exec=on)


# -- --tmpfs ---------------------------------------------------------------------------------------


def parse_tmpfs(text: str) -> Mount:
    """``--tmpfs TARGET[:OPTIONS]``: size=, mode=, ro/rw, [no]exec, [no]suid, [no]dev."""
    what = f"--tmpfs {text}"
    target, _, opts = text.partition(":")
    mount = Mount("tmpfs", clean_target(target, what))
    for opt in filter(None, opts.split(",")):
        key, sep, value = opt.partition("=")
        if key == "size" and sep:
            mount = replace(mount, tmpfs_size=parse_tmpfs_size(value, what))
        elif key == "mode" and sep:
            mount = replace(mount, tmpfs_mode=parse_tmpfs_mode(value, what))
        elif opt in ("ro", "rw"):
            mount = replace(mount, read_only=opt == "ro")
        elif opt in _SHORT_FLAGS:
            mount = _with_flag(mount, opt)
        else:
            raise UserError(
                f"{what}: unknown option {opt!r} (size=, mode=, ro, rw, [no]exec, [no]suid, [no]dev)"
            )
    return mount


def parse_tmpfs_size(value: str, what: str) -> int:
    from orchestrator.stack.units import UnitError, parse_size

    try:
        return parse_size(value, "tmpfs size")
    except UnitError as exc:
        raise UserError(f"{what}: {exc.message}") from None


def parse_tmpfs_mode(value: str, what: str) -> int:
    if not re.fullmatch(r"0?[0-7]{1,4}", value.removeprefix("0o")):
        raise UserError(f"{what}: tmpfs mode {value!r} is not an octal file mode (such as 1777)")
    return int(value.removeprefix("0o"), 8)


# -- --mount ---------------------------------------------------------------------------------------

_BOOL = {"": True, "true": True, "1": True, "false": False, "0": False}
_KEYS_OF = {
    "bind": {"bind-propagation", "bind-nonrecursive", "bind-recursive", "bind-create-host-path"},
    "volume": {"volume-nocopy", "volume-label", "volume-opt", "volume-driver", "volume-subpath"},
    "tmpfs": {"tmpfs-size", "tmpfs-mode"},
}


def parse_mount(text: str, cwd: str | None = None) -> Mount:
    """``--mount type=volume|bind|tmpfs,source=...,target=...,...`` (Docker's long form: CSV,
    so a value may be quoted)."""
    what = f"--mount {text}"
    try:
        items = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise UserError(f"{what}: not a comma-separated list of key=value") from None
    values: dict[str, str] = {}
    labels: list[str] = []
    options: list[str] = []
    for item in items:
        key, sep, value = item.strip().partition("=")
        key = key.lower()
        if key == "volume-label":
            labels.append(value)
        elif key == "volume-opt":
            options.append(value)
        elif key in values:
            raise UserError(f"{what}: {key} given twice")
        else:
            values[key] = value if sep else ""
    kind = values.pop("type", "volume")
    if kind not in ("volume", "bind", "tmpfs"):
        raise UserError(f"{what}: type {kind!r} is not one of volume, bind, tmpfs")
    source = _first(values, ("source", "src"))
    target = _first(values, ("target", "destination", "dst"))
    if not target:
        raise UserError(f"{what}: target is required")
    mount = Mount(kind, clean_target(target, what))  # type: ignore[arg-type]
    present = set(values) | {k for k, v in (("volume-label", labels), ("volume-opt", options)) if v}
    for other, keys in _KEYS_OF.items():
        used = sorted(keys & present)
        if other != kind and used:
            raise UserError(f"{what}: {used[0]} does not go with type={kind}")
    for key in ("readonly", "ro"):
        if key in values:
            mount = replace(mount, read_only=_bool(values.pop(key), key, what))
    for key in sorted(_SHORT_FLAGS & values.keys()):
        mount = _with_flag(mount, key, _bool(values.pop(key), key, what))
    values.pop("consistency", None)  # (macOS file sharing; nothing to do here)
    if kind == "bind":
        mount = _bind_options(mount, source, values, what, cwd)
    elif kind == "volume":
        mount = _volume_options(mount, source, values, labels, options, what)
    else:
        if source:
            raise UserError(f"{what}: a tmpfs mount has no source")
        if "tmpfs-size" in values:
            mount = replace(mount, tmpfs_size=parse_tmpfs_size(values.pop("tmpfs-size"), what))
        if "tmpfs-mode" in values:
            mount = replace(mount, tmpfs_mode=parse_tmpfs_mode(values.pop("tmpfs-mode"), what))
    if values:
        raise UserError(f"{what}: unknown key {sorted(values)[0]!r}")
    return mount


def _first(values: dict[str, str], keys: tuple[str, ...]) -> str | None:
    found = [values.pop(k) for k in keys if k in values]
    return found[0] if found else None


def _bool(value: str, key: str, what: str) -> bool:
    if value.lower() not in _BOOL:
        raise UserError(f"{what}: {key}={value}: use true or false")
    return _BOOL[value.lower()]


def _bind_options(
    mount: Mount, source: str | None, values: dict[str, str], what: str, cwd: str | None
) -> Mount:
    if not source:
        raise UserError(f"{what}: a bind mount needs a source")
    if not source.startswith(("/", ".")):
        raise UserError(f"{what}: bind source {source!r} must be a path (absolute, or ./...)")
    mount = replace(mount, source=_host_path(source, cwd))
    if "bind-propagation" in values:
        propagation = values.pop("bind-propagation")
        if propagation not in PROPAGATIONS:
            raise UserError(
                f"{what}: bind-propagation {propagation!r} is not one of {', '.join(PROPAGATIONS)}"
            )
        mount = replace(mount, propagation=propagation)
    if "bind-nonrecursive" in values:
        value = values.pop("bind-nonrecursive")
        mount = replace(mount, recursive=not _bool(value, "bind-nonrecursive", what))
    if "bind-recursive" in values:
        value = values.pop("bind-recursive")
        if value not in ("enabled", "disabled"):
            raise UserError(f"{what}: bind-recursive={value}: only enabled or disabled")
        mount = replace(mount, recursive=value == "enabled")
    if "bind-create-host-path" in values:
        value = values.pop("bind-create-host-path")
        mount = replace(mount, create_host_path=_bool(value, "bind-create-host-path", what))
    return mount


def _volume_options(
    mount: Mount,
    source: str | None,
    values: dict[str, str],
    labels: list[str],
    options: list[str],
    what: str,
) -> Mount:
    if source:
        mount = replace(mount, source=check_volume_name(source, what))
    if "volume-subpath" in values:
        raise UserError(f"{what}: volume-subpath is not supported")
    driver = values.pop("volume-driver", "local")
    if driver != "local":
        raise UserError(f"{what}: volume-driver {driver!r}: only the local driver exists here")
    if "volume-nocopy" in values:
        value = values.pop("volume-nocopy")
        mount = replace(mount, nocopy=_bool(value, "volume-nocopy", what))
    for item in (*labels, *options):
        if "=" not in item or item.startswith("="):
            raise UserError(f"{what}: {item!r} is not KEY=VALUE")
    if (labels or options) and not source:
        raise UserError(f"{what}: volume-label and volume-opt need a named volume (a source)")
    return replace(mount, volume_labels=tuple(labels), volume_options=tuple(options))


# -- --volumes-from --------------------------------------------------------------------------------


def parse_volumes_from(text: str) -> VolumesFrom:
    """``--volumes-from CONTAINER[:ro|rw]``."""
    name, sep, mode = text.partition(":")
    if not name or (sep and mode not in ("ro", "rw")):
        raise UserError(f"--volumes-from {text}: use CONTAINER[:ro|rw]")
    return VolumesFrom(name, (mode == "ro") if sep else None)


def check_unique_targets(mounts: tuple[Mount, ...] | list[Mount], what: str = "mounts") -> None:
    seen: set[str] = set()
    for m in mounts:
        if m.target in seen:
            raise UserError(f"{what}: two mounts at {m.target}")
        seen.add(m.target)


def from_flags(
    volumes: list[str], mounts: list[str], tmpfs: list[str], volumes_from: list[str]
) -> dict[str, Any]:
    """The description's ``mounts`` and ``volumes_from`` from run's -v, --mount, --tmpfs and
    --volumes-from."""
    parsed = [parse_volume(v) for v in volumes]
    parsed += [parse_mount(m) for m in mounts]
    parsed += [parse_tmpfs(t) for t in tmpfs]
    check_unique_targets(parsed, "-v/--mount/--tmpfs")
    return {
        "mounts": tuple(parsed),
        "volumes_from": tuple(parse_volumes_from(v) for v in volumes_from),
    }
