"""A user namespace with uid/gid mappings: root inside is an unprivileged uid on the host."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.busybox import bundle

pytestmark = pytest.mark.root

NAMESPACES = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "cgroup", "user")]
MAP = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_root_inside_is_unprivileged_outside(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host only\n")
    os.chmod(secret, 0o600)
    script = "id -u; cat /proc/self/uid_map; cat /secret 2>&1; sleep 2"
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", script],
        lower=busybox_rootfs,
        linux__namespaces=NAMESPACES,
        linux__uidMappings=MAP,
        linux__gidMappings=MAP,
    )
    spec = json.loads((b / "config.json").read_text())
    spec["mounts"].append(
        {
            "destination": "/secret",
            "type": "bind",
            "source": str(secret),
            "options": ["rbind", "ro"],
        }
    )
    (b / "config.json").write_text(json.dumps(spec))
    log = tmp_path / "log"
    state = rt.run("userns", b, log_path=str(log))
    time.sleep(0.3)
    status = Path(f"/proc/{state.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["200000"] * 4  # the host sees an unprivileged uid
    assert rt.wait("userns", timeout=10)["exit_code"] == 0
    rt.delete("userns")
    out = "".join(json.loads(line)["log"] for line in log.read_text().splitlines()).splitlines()
    assert out[0] == "0"
    assert out[1].split() == ["0", "200000", "65536"]
    assert "Permission denied" in out[2]  # root inside cannot read the host's root-only file


def test_user_namespace_needs_mappings(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    from runtime.errors import BundleError

    b = bundle(tmp_path / "b", ["true"], lower=busybox_rootfs, linux__namespaces=NAMESPACES)
    with pytest.raises(BundleError, match="a new user namespace needs uidMappings and gidMappings"):
        rt.run("nomap", b)


@pytest.mark.cgroup_v1
def test_cgroup_view_inside_a_user_namespace(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    """With its own cgroup namespace, the container sees its cgroup (and its limits) as the
    root of each hierarchy, read-only, user namespace or not."""
    script = "cat /sys/fs/cgroup/pids/pids.max; grep pids /proc/self/cgroup; echo x > /sys/fs/cgroup/pids/pids.max"
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", script],
        lower=busybox_rootfs,
        linux__namespaces=NAMESPACES,
        linux__uidMappings=MAP,
        linux__gidMappings=MAP,
        linux__resources={"pids": {"limit": 77}},
    )
    log = tmp_path / "log"
    rt.run("cg", b, log_path=str(log))
    assert rt.wait("cg", timeout=10)["exit_code"] != 0  # the write fails
    rt.delete("cg")
    out = "".join(json.loads(line)["log"] for line in log.read_text().splitlines()).splitlines()
    assert out[0] == "77"
    assert out[1].endswith(":pids:/")
    assert "Read-only file system" in out[2]
