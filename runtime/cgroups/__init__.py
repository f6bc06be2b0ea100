"""cgroups for the runtime: one Resources model, a v1 and a v2 manager, picked by detection.

    from runtime.cgroups import Resources, open_manager

    manager = open_manager(container_id)          # v1 or v2, detected on /sys/fs/cgroup
    manager.create()
    manager.set(Resources.from_oci(spec["linux"].get("resources")))
    manager.add_process(pid)

Layout:
  resources.py  Resources, DeviceRule, DEFAULT_DEVICE_RULES, the v1 -> v2 conversions
  base.py       the Manager interface and Stats
  detect.py     which version a cgroup root is
  v1.py         V1Manager: a table of subsystems over the v1 hierarchies (and hybrid hosts)
  v2.py         V2Manager: the unified hierarchy
  _files.py     cgroupfs reads and writes that fail with one readable line

Only the standard library is imported, and only the manager that is used: this runs inside the
small per-container monitor.
"""

from __future__ import annotations

import os

from runtime.cgroups.base import Manager, Stats
from runtime.cgroups.detect import detect_version
from runtime.cgroups.resources import DEFAULT_DEVICE_RULES, DeviceRule, Resources
from runtime.errors import Error

__all__ = [
    "DEFAULT_DEVICE_RULES",
    "DeviceRule",
    "Manager",
    "Resources",
    "Stats",
    "default_parent",
    "detect_version",
    "open_manager",
]

PARENT = "orchestrator"


def default_parent() -> str:
    """The cgroup parent of containers: ``orchestrator``, or a folder below it named by
    ``$ORCHESTRATOR_CGROUP_PARENT`` (each test uses its own, say). Everything we make stays
    under a parent named ``orchestrator``, so that it is recognisable on the host."""
    parent = os.environ.get("ORCHESTRATOR_CGROUP_PARENT") or PARENT
    if parent != PARENT and not parent.startswith(PARENT + "/"):
        raise Error(f"ORCHESTRATOR_CGROUP_PARENT={parent!r}: must be {PARENT!r} or below it")
    return parent


def open_manager(
    name: str,
    *,
    root: str = "/sys/fs/cgroup",
    parent: str | None = None,
    version: int | None = None,
) -> Manager:
    """The manager of cgroup ``<parent>/<name>`` (nothing is created until ``create()``).

    ``version`` forces 1 or 2; by default ``detect_version(root)`` decides. ``name`` must be one
    path component (no ``/``, ``..`` or NUL, at most 128 bytes); ``parent`` may be nested
    (default: ``default_parent()``).
    """
    if parent is None:
        parent = default_parent()
    if version is None:
        version = detect_version(root)
    if version == 2:
        from runtime.cgroups.v2 import V2Manager

        return V2Manager(name, root=root, parent=parent)
    if version == 1:
        from runtime.cgroups.v1 import V1Manager

        return V1Manager(name, root=root, parent=parent)
    raise Error(f"cgroup version must be 1 or 2, not {version!r}")
