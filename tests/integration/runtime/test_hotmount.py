"""Mounts into a running container and out of it (runtime.hotmount through the fork server)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import Error
from runtime.hotmount import MountSpec
from tests.busybox import bundle

pytestmark = pytest.mark.root


def _log(path: Path) -> str:
    if not path.exists():
        return ""
    return "".join(json.loads(line)["log"] for line in path.read_text().splitlines())


def _wait_for(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _host_mounts(under: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(under))]


@pytest.fixture
def rt(state_root: Path) -> Any:
    from runtime.api import Runtime

    runtime = Runtime(state_root / "runtime", fork_server=True)
    yield runtime
    for state in runtime.list():
        try:
            runtime.delete(state.id, force=True)
        except Exception:
            pass


def test_a_process_inside_sees_the_file_appear_then_disappear(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    source = tmp_path / "vol"
    source.mkdir()
    (source / "file").write_text("hello from the host\n")
    script = (
        "until [ -e /hot/file ]; do sleep 0.02; done; cat /hot/file; "
        "touch /hot/file 2>/dev/null && echo writable || echo read-only; "
        "until [ ! -e /hot/file ]; do sleep 0.02; done; echo gone"
    )
    log = tmp_path / "log"
    b = bundle(tmp_path / "b", ["sh", "-c", script], lower=busybox_rootfs)
    rt.run("hot", b, log_path=str(log))
    rt.mount("hot", MountSpec(str(source), "/hot", read_only=True))
    _wait_for(lambda: "read-only" in _log(log))
    assert _host_mounts(tmp_path) == []  # the mount is the container's alone
    rt.unmount("hot", "/hot")
    assert rt.wait("hot", timeout=10)["exit_code"] == 0
    assert _log(log) == "hello from the host\nread-only\ngone\n"
    assert (source / "file").exists()  # unmounting left the source alone


def test_symlinks_inside_lead_nowhere_outside(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """The target goes through symlinks the container made (absolute and ``..``) to a path
    that exists on the host: the mount lands inside the container's root, the host's folder
    stays as it was."""
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    source = tmp_path / "vol"
    source.mkdir()
    (source / "file").write_text("x")
    script = (
        f"mkdir -p {host_dir}; ln -s {host_dir} /abs; ln -s ../../../../../../.. /up; "
        "touch /ready; sleep 30"
    )
    b = bundle(tmp_path / "b", ["sh", "-c", script], lower=busybox_rootfs)
    rt.run("swap", b)
    _wait_for(lambda: (tmp_path / "b" / "upper" / "ready").exists())
    rt.mount("swap", MountSpec(str(source), "/abs/sub"))
    rt.mount("swap", MountSpec(str(source), f"/up{host_dir}/other"))
    assert list(host_dir.iterdir()) == []
    assert _host_mounts(tmp_path) == []
    out = os.pipe()
    code = rt.exec(
        "swap", ["sh", "-c", f"cat {host_dir}/sub/file {host_dir}/other/file"], stdio=(0, out[1], 2)
    )
    os.close(out[1])
    assert code == 0 and os.read(out[0], 100) == b"xx"
    os.close(out[0])
    rt.unmount("swap", "/abs/sub")
    with pytest.raises(Error, match="nothing is mounted"):
        rt.unmount("swap", "/abs/sub")


def test_bad_targets_are_one_clear_error(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    source = tmp_path / "vol"
    source.mkdir()
    b = bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs)
    rt.run("bad", b)
    with pytest.raises(Error, match="is a file where a folder is needed"):
        rt.mount("bad", MountSpec(str(source), "/etc/passwd"))
    with pytest.raises(Error, match="container's root"):
        rt.mount("bad", MountSpec(str(source), "/"))
    with pytest.raises(Error, match="No such file"):
        rt.mount("bad", MountSpec(str(tmp_path / "missing"), "/x"))


def test_mount_into_a_container_with_a_user_namespace(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    source = tmp_path / "vol"
    source.mkdir()
    (source / "file").write_text("mapped\n")
    os.chmod(source, 0o755)
    mapping = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "cgroup", "user")]
    log = tmp_path / "log"
    script = "until [ -e /deep/er/file ]; do sleep 0.02; done; cat /deep/er/file; stat -c %u /deep"
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", script],
        lower=busybox_rootfs,
        linux__namespaces=namespaces,
        linux__uidMappings=mapping,
        linux__gidMappings=mapping,
    )
    rt.run("userns", b, log_path=str(log))
    rt.mount("userns", MountSpec(str(source), "/deep/er", read_only=True))
    assert rt.wait("userns", timeout=10)["exit_code"] == 0
    assert _log(log) == "mapped\n0\n"  # the mount point was made as the container's root
