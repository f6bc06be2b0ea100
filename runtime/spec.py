"""The runtime's own container config, converted from an OCI runtime-spec ``config.json``.

``load_bundle(path)`` reads and validates the bundle and returns a frozen ``ContainerConfig``.
Validation is a list of small check functions; each failure is a ``BundleError`` that names the
field (``process.cwd: must be an absolute path``). Extensions of ours travel as annotations:

  org.orchestrator.rootfs.lowerdirs   JSON list of image layer dirs, lowest first: the runtime
                                      mounts an overlay at root.path inside the container's own
                                      mount namespace (so no mount is ever left on the host)
  org.orchestrator.rootfs.upperdir    the container's writable layer
  org.orchestrator.rootfs.workdir     overlay's work directory (same filesystem as upperdir)
  org.orchestrator.user               "user[:group]" resolved from the container's /etc/passwd
                                      and /etc/group after pivot_root, never from the host
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import BundleError
from runtime.hooks import Hook
from runtime.linux import caps
from runtime.linux import syscalls as sc

ANNOTATION_LOWERDIRS = "org.orchestrator.rootfs.lowerdirs"
ANNOTATION_UPPERDIR = "org.orchestrator.rootfs.upperdir"
ANNOTATION_WORKDIR = "org.orchestrator.rootfs.workdir"
ANNOTATION_USER = "org.orchestrator.user"

MAX_CONFIG_BYTES = 4 * 1024 * 1024

NAMESPACE_FLAGS = {
    "mount": sc.CLONE_NEWNS,
    "pid": sc.CLONE_NEWPID,
    "uts": sc.CLONE_NEWUTS,
    "ipc": sc.CLONE_NEWIPC,
    "network": sc.CLONE_NEWNET,
    "cgroup": sc.CLONE_NEWCGROUP,
    "user": sc.CLONE_NEWUSER,
    "time": sc.CLONE_NEWTIME,
}

# mount(8) option -> (flags to set, flags to clear); propagation options are applied separately.
_MOUNT_FLAGS = {
    "ro": (sc.MS_RDONLY, 0),
    "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0),
    "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0),
    "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0),
    "exec": (0, sc.MS_NOEXEC),
    "sync": (sc.MS_SYNCHRONOUS, 0),
    "async": (0, sc.MS_SYNCHRONOUS),
    "dirsync": (sc.MS_DIRSYNC, 0),
    "noatime": (sc.MS_NOATIME, 0),
    "atime": (0, sc.MS_NOATIME),
    "nodiratime": (sc.MS_NODIRATIME, 0),
    "diratime": (0, sc.MS_NODIRATIME),
    "relatime": (sc.MS_RELATIME, 0),
    "norelatime": (0, sc.MS_RELATIME),
    "strictatime": (sc.MS_STRICTATIME, 0),
    "nosymfollow": (sc.MS_NOSYMFOLLOW, 0),
    "bind": (sc.MS_BIND, 0),
    "rbind": (sc.MS_BIND | sc.MS_REC, 0),
    "remount": (sc.MS_REMOUNT, 0),
    "defaults": (0, 0),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}


# Docker's default masked and read-only paths (moby oci/defaults.go).
DEFAULT_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str
    source: str
    flags: int
    clear_flags: int
    propagation: int
    data: str

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)


@dataclass(frozen=True)
class IdMapping:
    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class Rlimit:
    resource: int
    soft: int
    hard: int
    name: str


@dataclass(frozen=True)
class Capabilities:
    bounding: int
    effective: int
    permitted: int
    inheritable: int
    ambient: int


@dataclass(frozen=True)
class Overlay:
    lowerdirs: tuple[str, ...]
    upperdir: str
    workdir: str


@dataclass(frozen=True)
class ContainerConfig:
    bundle: Path
    root_path: Path
    root_readonly: bool
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    umask: int | None
    user_name: str | None
    terminal: bool
    capabilities: Capabilities
    no_new_privileges: bool
    rlimits: tuple[Rlimit, ...]
    oom_score_adj: int | None
    hostname: str | None
    domainname: str | None
    mounts: tuple[Mount, ...]
    namespaces: dict[str, str | None]
    uid_mappings: tuple[IdMapping, ...]
    gid_mappings: tuple[IdMapping, ...]
    resources: dict[str, Any]
    cgroups_path: str | None
    sysctl: dict[str, str]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    rootfs_propagation: int
    overlay: Overlay | None
    annotations: dict[str, str] = field(default_factory=dict)
    # linux.seccomp as it is: the init compiles it (runtime.seccomp, which also checks it)
    seccomp: dict[str, Any] | None = None
    hooks: dict[str, tuple[Hook, ...]] = field(default_factory=dict)  # runtime.hooks
    warnings: tuple[str, ...] = ()  # settings this host cannot apply and need not (see below)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    # the config.json it was read from, when that is one line of JSON (sent as it is to the
    # fork server rather than encoded again)
    raw_text: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def clone_flags(self) -> int:
        flags = 0
        for kind, path in self.namespaces.items():
            if path is None:
                flags |= NAMESPACE_FLAGS[kind]
        return flags

    @property
    def stop_signal(self) -> int:
        name = self.annotations.get("org.opencontainers.image.stopSignal", "SIGTERM")
        return parse_signal(name)


def parse_signal(value: str | int) -> int:
    """``9``, ``KILL``, ``SIGKILL`` or ``sigkill`` to a number; ValueError otherwise."""
    if isinstance(value, int) or str(value).isdigit():
        number = int(value)
        if 1 <= number <= 64:
            return number
        raise ValueError(f"signal {value} out of range")
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {value!r}") from None


def load_bundle(bundle: str | os.PathLike[str]) -> ContainerConfig:
    path = Path(bundle).absolute()
    config_path = path / "config.json"
    try:
        with open(config_path, "rb") as f:
            raw_bytes = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise BundleError(f"{config_path}: no config.json in bundle") from None
    except OSError as exc:
        raise BundleError(f"{config_path}: {exc.strerror}") from None
    if len(raw_bytes) > MAX_CONFIG_BYTES:
        raise BundleError(f"{config_path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = json.loads(raw_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{config_path}: not valid JSON: {exc}") from None
    config = parse_config(raw, path)
    text = raw_bytes.strip()
    if b"\n" not in text and b"\r" not in text:
        config = dataclasses.replace(config, raw_text=text)
    return config


class _Reader:
    """Typed access to the raw config, raising BundleError with the dotted field name."""

    def __init__(self, data: Any, where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, message: str) -> BundleError:
        name = f"{self.where}.{key}" if self.where else key
        return BundleError(f"config.json: {name}: {message}")

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False
    ) -> Any:
        if not isinstance(self.data, dict):
            raise BundleError(f"config.json: {self.where}: must be an object")
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.fail(key, "is required")
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool):
            raise self.fail(key, "must be an integer")
        if not isinstance(value, kind):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(key, f"must be of type {_json_name(names)}")
        return value

    def sub(self, key: str, required: bool = False) -> _Reader:
        where = f"{self.where}.{key}" if self.where else key
        return _Reader(self.get(key, dict, {}, required), where)

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        items = self.get(key, list, None)
        if items is None:
            return default
        if not all(isinstance(x, str) for x in items):
            raise self.fail(key, "must be a list of strings")
        return tuple(items)


def _json_name(python_names: str) -> str:
    return (
        python_names.replace("dict", "object")
        .replace("list", "array")
        .replace("str", "string")
        .replace("int", "integer")
        .replace("bool", "boolean")
    )


def _uint(reader: _Reader, key: str, default: int, limit: int = 2**32 - 1) -> int:
    value = reader.get(key, int, default)
    if not 0 <= value <= limit:
        raise reader.fail(key, f"must be between 0 and {limit}")
    return int(value)


def parse_config(raw: Any, bundle: Path) -> ContainerConfig:
    top = _Reader(raw, "")
    if not isinstance(raw, dict):
        raise BundleError("config.json: must be a JSON object")
    top.get("ociVersion", str, required=True)
    root = top.sub("root", required=True)
    root_rel = root.get("path", str, required=True)
    root_path = (bundle / root_rel).absolute() if not os.path.isabs(root_rel) else Path(root_rel)
    annotations = top.get("annotations", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise top.fail("annotations", "must map strings to strings")
    overlay = _parse_overlay(annotations)
    if overlay is None and not root_path.is_dir():
        raise BundleError(f"config.json: root.path: {root_path} is not a directory")

    process = top.sub("process", required=True)
    args = process.strings("args")
    if not args:
        raise process.fail("args", "must be a non-empty list of strings")
    env = process.strings("env")
    for item in env:
        if "=" not in item or "\0" in item:
            raise process.fail("env", f"{item!r} is not NAME=VALUE")
    cwd = process.get("cwd", str, required=True)
    if not cwd.startswith("/"):
        raise process.fail("cwd", f"{cwd!r} must be an absolute path")
    user = process.sub("user")
    additional = user.get("additionalGids", list, [])
    if not all(
        isinstance(g, int) and not isinstance(g, bool) and 0 <= g < 2**32 for g in additional
    ):
        raise user.fail("additionalGids", "must be a list of group ids")
    umask = user.get("umask", int, None)

    linux = top.sub("linux")
    namespaces: dict[str, str | None] = {}
    for i, ns in enumerate(linux.get("namespaces", list, [])):
        nsr = _Reader(ns, f"linux.namespaces[{i}]")
        kind = nsr.get("type", str, required=True)
        if kind not in NAMESPACE_FLAGS:
            raise nsr.fail("type", f"unknown namespace type {kind!r}")
        if kind in namespaces:
            raise nsr.fail("type", f"namespace {kind!r} listed twice")
        namespaces[kind] = nsr.get("path", str, None)
    if "mount" not in namespaces:
        # The host's mount namespace: nothing may be mounted (it would be the host's).
        if overlay is not None:
            raise top.fail("annotations", "an overlay root filesystem needs a mount namespace")
        if root.get("readonly", bool, False):
            raise root.fail("readonly", "a read-only root needs a mount namespace")

    mounts = tuple(_parse_mount(m, i) for i, m in enumerate(top.get("mounts", list, [])))
    uid_maps = _parse_mappings(linux, "uidMappings")
    gid_maps = _parse_mappings(linux, "gidMappings")
    if "user" in namespaces and namespaces["user"] is None and not (uid_maps and gid_maps):
        raise linux.fail("uidMappings", "a new user namespace needs uidMappings and gidMappings")

    propagation_name = linux.get("rootfsPropagation", str, "rprivate")
    if propagation_name not in _PROPAGATION:
        raise linux.fail("rootfsPropagation", f"unknown propagation {propagation_name!r}")

    hostname = top.get("hostname", str, None)
    if hostname is not None:
        _check_hostname(top, "hostname", hostname)
    domainname = top.get("domainname", str, None)
    if hostname and "uts" not in namespaces:
        raise top.fail("hostname", "setting a hostname needs a uts namespace")

    oom = process.get("oomScoreAdj", int, None)
    if oom is not None and not -1000 <= oom <= 1000:
        raise process.fail("oomScoreAdj", "must be between -1000 and 1000")

    sysctl = linux.get("sysctl", dict, {})
    for key, value in sysctl.items():
        if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9_.\-/]+", key) or ".." in key:
            raise linux.fail("sysctl", f"invalid entry {key!r}")
        owner = sysctl_namespace(key)
        if owner not in namespaces:
            why = f"without a {owner} namespace" if owner else "(it is not namespaced)"
            raise linux.fail("sysctl", f"{key} would change the host's value {why}")

    config = ContainerConfig(
        bundle=bundle,
        root_path=root_path,
        root_readonly=bool(root.get("readonly", bool, False)),
        args=args,
        env=env,
        cwd=cwd,
        uid=_uint(user, "uid", 0),
        gid=_uint(user, "gid", 0),
        additional_gids=tuple(additional),
        umask=umask,
        user_name=annotations.get(ANNOTATION_USER) or None,
        terminal=bool(process.get("terminal", bool, False)),
        capabilities=_parse_capabilities(process),
        no_new_privileges=bool(process.get("noNewPrivileges", bool, False)),
        rlimits=_parse_rlimits(process),
        oom_score_adj=oom,
        hostname=hostname,
        domainname=domainname,
        mounts=mounts,
        namespaces=namespaces,
        uid_mappings=uid_maps,
        gid_mappings=gid_maps,
        resources=linux.get("resources", dict, {}),
        cgroups_path=linux.get("cgroupsPath", str, None),
        sysctl=dict(sysctl),
        masked_paths=_abs_paths(linux, "maskedPaths"),
        readonly_paths=_abs_paths(linux, "readonlyPaths"),
        rootfs_propagation=_PROPAGATION[propagation_name],
        overlay=overlay,
        annotations=dict(annotations),
        seccomp=linux.get("seccomp", dict, None),
        hooks=_parse_hooks(top),
        warnings=_security_labels(process, linux) + _unmounted(raw, namespaces),
        raw=raw,
    )
    return config


# Sysctls that belong to a namespace (runc's list, kernel/ipc and net): others are the host's.
_IPC_SYSCTLS = frozenset(
    [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ]
)


def sysctl_namespace(key: str) -> str | None:
    """The namespace whose value sysctl ``key`` sets (None: a host-wide one)."""
    name = key.replace("/", ".")
    if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
        return "ipc"
    if name.startswith("net."):
        return "network"
    if name in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def _parse_hooks(top: _Reader) -> dict[str, tuple[Hook, ...]]:
    raw = top.get("hooks", dict, None)
    if not raw:
        return {}
    from runtime import hooks

    return hooks.parse(raw)


# (config key, the security module that applies it)
_LABELS = (
    ("process.apparmorProfile", "AppArmor"),
    ("process.selinuxLabel", "SELinux"),
    ("linux.mountLabel", "SELinux"),
)


def security_module_active(module: str) -> bool:
    """Whether the host enforces AppArmor or SELinux (runc's tests)."""
    if module == "SELinux":
        return os.path.exists("/sys/fs/selinux/enforce")
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().startswith("Y")
    except OSError:
        return False


def _security_labels(process: _Reader, linux: _Reader) -> tuple[str, ...]:
    """AppArmor profiles and SELinux labels are not applied by this runtime: on a host where
    that module is active, asking for one is an error (the container would run unconfined);
    where it is not, nothing could apply it, and the caller is warned."""
    warnings = []
    for key, module in _LABELS:
        reader = process if key.startswith("process.") else linux
        if not reader.get(key.partition(".")[2], str, ""):
            continue
        if security_module_active(module):
            raise reader.fail(
                key.partition(".")[2],
                f"{module} is active on this host, and this runtime cannot apply it",
            )
        warnings.append(f"{key} ignored: {module} is not enabled on this host")
    return tuple(warnings)


def _unmounted(raw: dict[str, Any], namespaces: dict[str, str | None]) -> tuple[str, ...]:
    """Without a mount namespace nothing is mounted (it would be the host's): say what the
    config asked for that is left undone."""
    if "mount" in namespaces:
        return ()
    linux = raw.get("linux") or {}
    asked = [key for key in ("mounts",) if raw.get(key)] + [
        f"linux.{key}"
        for key in ("maskedPaths", "readonlyPaths", "devices", "rootfsPropagation")
        if linux.get(key)
    ]
    if not asked:
        return ()
    return (
        f"{', '.join(asked)} ignored: without a mount namespace the container shares the"
        " host's mounts (its root is root.path, by chroot)",
    )


def _check_hostname(reader: _Reader, key: str, value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.\-]{0,62})?", value):
        raise reader.fail(key, f"{value!r} is not a valid hostname")


def _abs_paths(reader: _Reader, key: str) -> tuple[str, ...]:
    paths = reader.strings(key)
    for p in paths:
        if not p.startswith("/"):
            raise reader.fail(key, f"{p!r} must be an absolute path")
    return paths


def _parse_overlay(annotations: dict[str, str]) -> Overlay | None:
    raw = annotations.get(ANNOTATION_LOWERDIRS)
    if raw is None:
        return None
    try:
        lower = json.loads(raw)
    except json.JSONDecodeError:
        lower = None
    if (
        not isinstance(lower, list)
        or not lower
        or not all(isinstance(x, str) and x.startswith("/") for x in lower)
    ):
        raise BundleError(
            f"config.json: annotations.{ANNOTATION_LOWERDIRS}: must be a JSON list of absolute paths"
        )
    upper = annotations.get(ANNOTATION_UPPERDIR, "")
    work = annotations.get(ANNOTATION_WORKDIR, "")
    if not upper.startswith("/") or not work.startswith("/"):
        raise BundleError(
            "config.json: annotations: an overlay rootfs needs absolute upperdir and workdir"
        )
    for d in (*lower, upper, work):
        if any(c in d for c in ",:\n\0"):
            raise BundleError(f"config.json: annotations: overlay directory {d!r} contains , or :")
        if not os.path.isdir(d):
            raise BundleError(f"config.json: annotations: overlay directory {d} does not exist")
    return Overlay(tuple(lower), upper, work)


def _parse_mount(raw: Any, index: int) -> Mount:
    reader = _Reader(raw, f"mounts[{index}]")
    destination = reader.get("destination", str, required=True)
    if not destination.startswith("/"):
        raise reader.fail("destination", f"{destination!r} must be an absolute path")
    options = reader.strings("options")
    flags = clear = propagation = 0
    data: list[str] = []
    for opt in options:
        if opt in _MOUNT_FLAGS:
            add, remove = _MOUNT_FLAGS[opt]
            flags |= add
            flags &= ~remove
            clear |= remove
        elif opt in _PROPAGATION:
            propagation = _PROPAGATION[opt]
        elif opt in ("tmpcopyup", "copy-symlink", "idmap", "ridmap", "z", "Z"):
            raise reader.fail("options", f"mount option {opt!r} is not supported")
        else:
            data.append(opt)
    kind = reader.get("type", str, "bind" if flags & sc.MS_BIND else "")
    if kind == "bind":
        flags |= sc.MS_BIND
    if not kind:
        raise reader.fail("type", "is required for a mount that is not a bind mount")
    source = reader.get("source", str, kind)
    return Mount(destination, kind, source, flags, clear, propagation, ",".join(data))


def _parse_mappings(linux: _Reader, key: str) -> tuple[IdMapping, ...]:
    result = []
    for i, raw in enumerate(linux.get(key, list, [])):
        reader = _Reader(raw, f"linux.{key}[{i}]")
        result.append(
            IdMapping(
                _uint(reader, "containerID", 0),
                _uint(reader, "hostID", 0),
                _uint(reader, "size", 0),
            )
        )
    return tuple(result)


def _parse_capabilities(process: _Reader) -> Capabilities:
    raw = process.get("capabilities", dict, None)
    if raw is None:
        default = caps.mask(caps.DOCKER_DEFAULT)
        return Capabilities(default, default, default, 0, 0)
    reader = _Reader(raw, "process.capabilities")
    sets = {}
    for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        names = reader.strings(key)
        try:
            sets[key] = caps.mask(names)
        except ValueError as exc:
            raise reader.fail(key, str(exc)) from None
    return Capabilities(**sets)


def _parse_rlimits(process: _Reader) -> tuple[Rlimit, ...]:
    result = []
    for i, raw in enumerate(process.get("rlimits", list, [])):
        reader = _Reader(raw, f"process.rlimits[{i}]")
        name = reader.get("type", str, required=True)
        number = getattr(resource, name, None)
        if not name.startswith("RLIMIT_") or not isinstance(number, int):
            raise reader.fail("type", f"unknown rlimit {name!r}")
        hard = _uint(reader, "hard", 0, 2**64 - 1)
        soft = _uint(reader, "soft", 0, 2**64 - 1)
        if soft > hard:
            raise reader.fail("soft", "is larger than hard")
        result.append(Rlimit(number, soft, hard, name))
    return tuple(result)
