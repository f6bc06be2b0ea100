"""Generate OCI runtime-spec configs with Docker's defaults (what ``runc spec`` does, for us).

The orchestrator builds every container's ``config.json`` through ``default_spec`` and then
adjusts it; tests and the CLI's ``spec`` command use it for hand-made bundles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.linux.caps import DOCKER_DEFAULT
from runtime.spec import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)


def default_device_rules() -> list[dict[str, Any]]:
    """Docker's device cgroup rules: deny everything, then allow the usual nodes."""
    from runtime.cgroups.resources import DEFAULT_DEVICE_RULES

    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for rule in DEFAULT_DEVICE_RULES:
        entry: dict[str, Any] = {"allow": rule.allow, "type": rule.type, "access": rule.access}
        if rule.major is not None:
            entry["major"] = rule.major
        if rule.minor is not None:
            entry["minor"] = rule.minor
        rules.append(entry)
    return rules


def default_mounts(shm_size: int = 64 * 1024 * 1024) -> list[dict[str, Any]]:
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


def default_spec(
    args: list[str],
    *,
    rootfs: str = "rootfs",
    env: list[str] | None = None,
    cwd: str = "/",
    hostname: str | None = None,
    uid: int = 0,
    gid: int = 0,
    network: bool = True,
) -> dict[str, Any]:
    caps = list(DOCKER_DEFAULT)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if network:
        namespaces.append({"type": "network"})
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            "args": list(args),
            "env": list(env if env is not None else DEFAULT_ENV),
            "cwd": cwd,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "inheritable": [],
                "ambient": [],
            },
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": False},
        "mounts": default_mounts(),
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
            "resources": {"devices": default_device_rules()},
        },
        "annotations": {},
    }
    if hostname:
        spec["hostname"] = hostname
    return spec


def write_bundle(bundle: Path, spec: dict[str, Any]) -> Path:
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle
