"""What ``version``, ``info`` and ``system df`` report: facts about this host, this state root
and what it holds. Each function returns plain data (Docker's field names where Docker has the
field), for a table or ``--format``."""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

OCI_VERSION = "1.0.2"


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def cgroup_version() -> int:
    from runtime.cgroups import detect_version

    return detect_version("/sys/fs/cgroup")


def version() -> dict[str, Any]:
    from orchestrator import __version__

    kernel = platform.release()
    return {
        "Client": {
            "Version": __version__,
            "Python": platform.python_version(),
            "Os": "linux",
            "Arch": _arch(),
        },
        "Server": {
            "Version": __version__,
            "Runtime": f"orchestrator runtime {__version__} (OCI {OCI_VERSION})",
            "KernelVersion": kernel,
            "CgroupVersion": str(cgroup_version()),
            "CgroupDriver": "cgroupfs",
            "Os": "linux",
            "Arch": _arch(),
        },
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _backing_fs(path: Path) -> str:
    """The filesystem type of the mount that holds ``path``."""
    best, kind = "", "unknown"
    target = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        point = fields[4]
        inside = point == "/" or target == point or target.startswith(point + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[fields.index("-", 6) + 1]
    return kind


def info(root: Path) -> dict[str, Any]:
    from orchestrator import __version__
    from orchestrator.containers import Containers
    from orchestrator.paths import images_dir
    from runtime.image.store import ImageStore

    containers = Containers(root)
    states = [containers.status(c)["state"] for c in containers.all()]
    running = states.count("running")
    paused = states.count("paused")
    try:
        images = len(ImageStore(images_dir(root)).list()) if images_dir(root).exists() else 0
    except Exception:
        images = 0
    supervisor = (root / "supervisor.sock").exists()
    return {
        "Containers": len(states),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": images,
        "ServerVersion": __version__,
        "StorageDriver": "overlay",
        "BackingFilesystem": _backing_fs(root) if root.exists() else "unknown",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": str(cgroup_version()),
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _memory(),
        "Name": socket.gethostname(),
        "DockerRootDir": str(root),
        "Runtime": f"orchestrator runtime (OCI {OCI_VERSION})",
        "Python": sys.version.split()[0],
        "Supervisor": "socket present" if supervisor else "not running",
    }


def disk_usage(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Images, containers, local volumes and build cache with their sizes (bytes): what
    ``system df -v`` lists; the summary adds them up."""
    from orchestrator.containers import Containers
    from orchestrator.diskusage import tree_size
    from orchestrator.imagebuild.cache import cache_dir
    from orchestrator.paths import images_dir
    from orchestrator.volumes import Volumes, volumes_of

    containers = Containers(root)
    rows: dict[str, list[dict[str, Any]]] = {
        "Images": [],
        "Containers": [],
        "Volumes": [],
        "BuildCache": [],
    }
    all_containers = containers.all()
    used_images: dict[str, int] = {}
    used_volumes: dict[str, int] = {}
    for c in all_containers:
        status = containers.status(c)
        used_images[str(c.record.get("image_id"))] = (
            used_images.get(str(c.record.get("image_id")), 0) + 1
        )
        for name in volumes_of(c.record):
            used_volumes[name] = used_volumes.get(name, 0) + 1
        rows["Containers"].append(
            {
                "ID": c.id,
                "Names": c.name,
                "Image": c.record.get("image"),
                "State": status["state"],
                "Active": status["state"] in ("running", "paused"),
                "Size": tree_size(c.directory / "upper"),
                "LogSize": c.log_path.stat().st_size if c.log_path.exists() else 0,
                "Created": c.record.get("created"),
            }
        )
    if images_dir(root).exists():
        from runtime.image.store import ImageStore

        store = ImageStore(images_dir(root))
        for image in store.list():
            sizes = {d: store.layer_size(d) for d in image.layers}
            rows["Images"].append(
                {
                    "ID": image.id,
                    "Repository": ", ".join(image.repo_tags) or "<none>",
                    "Containers": used_images.get(image.id, 0),
                    "Active": image.id in used_images,
                    "Size": image.size or sum(sizes.values()),
                    "Layers": sizes,
                    "Created": image.created,
                }
            )
    for volume in Volumes(root).all():
        rows["Volumes"].append(
            {
                "Name": volume.name,
                "Links": used_volumes.get(volume.name, 0),
                "Active": volume.name in used_volumes,
                "Size": tree_size(volume.data),
            }
        )
    steps = cache_dir(root) / "steps"
    if steps.is_dir():
        for record in steps.glob("*/*.json"):
            rows["BuildCache"].append(
                {"ID": record.stem[:12], "Size": record.stat().st_size, "Active": False}
            )
    return rows


def summary(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One line per kind: total count, active, size and what removing the unused frees.
    Images share layers: each layer counts once, and is reclaimable when no image in use
    has it."""
    lines = []
    images = rows["Images"]
    layers: dict[str, int] = {}
    active_layers: set[str] = set()
    for image in images:
        layers.update(image["Layers"])
        if image["Active"]:
            active_layers |= set(image["Layers"])
    image_size = sum(layers.values())
    reclaim = sum(size for d, size in layers.items() if d not in active_layers)
    lines.append(_line("Images", images, image_size, reclaim))
    for kind, title in (
        ("Containers", "Containers"),
        ("Volumes", "Local Volumes"),
        ("BuildCache", "Build Cache"),
    ):
        items = rows[kind]
        size = sum(int(i["Size"]) for i in items)
        lines.append(
            _line(title, items, size, sum(int(i["Size"]) for i in items if not i["Active"]))
        )
    return lines


def _line(kind: str, items: list[dict[str, Any]], size: int, reclaimable: int) -> dict[str, Any]:
    return {
        "Type": kind,
        "TotalCount": len(items),
        "Active": sum(1 for i in items if i["Active"]),
        "Size": size,
        "Reclaimable": reclaimable,
    }
