"""A container's mounts (orchestrator.mountspec, resolved) as OCI ``mounts`` entries.

Volumes and host folders are bind mounts (``rbind`` unless asked otherwise, ``rprivate`` unless
a propagation is given, ``nosuid`` and ``nodev`` unless ``suid``/``dev``); tmpfs gets its size
and mode. A mount at the place of one the runtime would make anyway (``/dev/shm``,
``/etc/hosts``) replaces it; the others are ordered by depth after the kernel filesystems, as
Docker sorts them, so that ``/data`` is mounted before ``/data/cache``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.mountspec import Mount

_KERNEL_TREES = ("/proc", "/dev", "/sys")


def entry(m: Mount) -> dict[str, Any]:
    """The OCI mount of ``m`` (a volume must be resolved: ``host_path`` set)."""
    flags = ["ro" if m.read_only else "rw", "suid" if m.suid else "nosuid"]
    flags += ["dev" if m.dev else "nodev", "noexec" if m.noexec else "exec"]
    if m.type == "tmpfs":
        data = [f"size={m.tmpfs_size}"] if m.tmpfs_size is not None else []
        data += [f"mode={m.tmpfs_mode:o}"] if m.tmpfs_mode is not None else []
        return {
            "destination": m.target,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": flags + data,
        }
    source = m.host_path if m.type == "volume" else (m.host_path or m.source)
    if not source:
        raise ValueError(f"mount at {m.target}: the volume has not been resolved to a folder")
    options = ["rbind" if m.recursive else "bind", m.propagation or "rprivate", *flags]
    return {"destination": m.target, "type": "bind", "source": source, "options": options}


def add_to_spec(spec: dict[str, Any], mounts: Sequence[Mount]) -> None:
    """Put ``mounts`` into ``spec["mounts"]`` (see the module's docstring for the order)."""
    if not mounts:
        return
    ours = {m.target: entry(m) for m in mounts}
    kernel: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for existing in spec.get("mounts", []):
        destination = existing["destination"]
        replaced = ours.pop(destination, None)
        chosen = replaced or existing
        in_tree = any(destination == t or destination.startswith(t + "/") for t in _KERNEL_TREES)
        (kernel if in_tree else rest).append(chosen)
    rest += ours.values()
    rest.sort(key=lambda e: e["destination"].rstrip("/").count("/"))
    spec["mounts"] = kernel + rest
