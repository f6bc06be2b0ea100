"""Test helpers: a busybox root filesystem and OCI bundles made from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")


def make_rootfs(target: Path) -> Path:
    """A minimal root filesystem: static busybox, its applets, /etc/passwd and /etc/group."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/app"):
        (target / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, target / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = target / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (target / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (target / "etc" / "group").write_text(
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"
    )
    os.chmod(target / "tmp", 0o1777)
    os.chown(target / "home" / "app", 1000, 1000)
    return target


def bundle(
    directory: Path,
    args: list[str],
    *,
    lower: Path | None = None,
    rootfs: Path | None = None,
    **changes: Any,
) -> Path:
    """Write an OCI bundle: ``rootfs`` used directly, or an overlay of ``lower`` with its own
    upper layer in ``directory/upper`` (as the orchestrator does)."""
    from runtime.spec import ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR, ANNOTATION_WORKDIR
    from runtime.specgen import default_spec

    directory.mkdir(parents=True, exist_ok=True)
    spec = default_spec(args, hostname=changes.pop("hostname", "box"))
    if lower is not None:
        for sub in ("upper", "work", "rootfs"):
            (directory / sub).mkdir(exist_ok=True)
        spec["annotations"].update(
            {
                ANNOTATION_LOWERDIRS: json.dumps([str(lower)]),
                ANNOTATION_UPPERDIR: str(directory / "upper"),
                ANNOTATION_WORKDIR: str(directory / "work"),
            }
        )
    else:
        assert rootfs is not None
        spec["root"]["path"] = str(rootfs)
    for key, value in changes.items():
        target = spec
        *path, last = key.split("__")
        for part in path:
            target = target.setdefault(part, {})
        if isinstance(value, dict) and isinstance(target.get(last), dict):
            target[last].update(value)
        else:
            target[last] = value
    (directory / "config.json").write_text(json.dumps(spec))
    return directory
