"""Containers whose cgroup is on a real cgroup2 hierarchy, started the ordinary way (pre-made
containers need cgroup v1's rename), forked directly and through the fork server.

On a pure v2 host that is /sys/fs/cgroup; on this project's hybrid test machines it is the
``unified`` hierarchy, which has no controllers enabled: everything the core cgroup2 files do
(cgroup.procs, cgroup.freeze and cgroup.events, cgroup.kill, cpu.stat, device rules as an
eBPF program) is tested for real; limits that need a controller are skipped, saying which.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.api import Runtime
from runtime.cgroups.detect import mount_type
from tests.busybox import bundle
from tests.conftest import current_cgroup_parent


def _v2_root() -> str | None:
    for candidate in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if mount_type(candidate) == "cgroup2":
            return candidate
    return None


V2_ROOT = _v2_root()

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(V2_ROOT is None, reason="no cgroup2 hierarchy is mounted"),
]


def controllers() -> set[str]:
    assert V2_ROOT is not None
    return set(Path(V2_ROOT, "cgroup.controllers").read_text().split())


@pytest.fixture(params=["direct", "fork server", "pre-made"])
def rt2(
    request: pytest.FixtureRequest, state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> Iterator[Runtime]:
    """``pre-made``: through the fork server, once it holds a pre-made container (pool2)."""
    assert V2_ROOT is not None
    runtime = Runtime(
        state_root / "runtime", cgroup_root=V2_ROOT, fork_server=request.param != "direct"
    )
    assert runtime.cgroup_version == 2
    if request.param == "pre-made":
        from runtime.forkserver import pool_ready

        runtime.run("first", bundle(tmp_path / "first", ["true"], lower=busybox_rootfs))
        runtime.wait("first", timeout=10)
        runtime.delete("first")
        deadline = time.monotonic() + 10
        while pool_ready(runtime.root) < 1:
            assert time.monotonic() < deadline, "no pre-made container"
            time.sleep(0.02)
    yield runtime
    for state in runtime.list():
        runtime.delete(state.id, force=True)
    if request.param != "direct":
        from runtime.forkserver import stop

        stop(runtime.root)


def cgroup_dir(name: str) -> Path:
    assert V2_ROOT is not None
    return Path(V2_ROOT, current_cgroup_parent(), name)


def log_text(log: Path) -> str:
    return "".join(json.loads(line)["log"] for line in log.read_text().splitlines())


def test_a_container_lives_in_its_v2_cgroup(
    rt2: Runtime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    script = "grep ^0:: /proc/self/cgroup; cat /sys/fs/cgroup/cgroup.type; echo done"
    b = bundle(tmp_path / "b", ["sh", "-c", script], lower=busybox_rootfs)
    log = tmp_path / "log"
    state = rt2.create("c", b, log_path=str(log))
    assert f"0::/{current_cgroup_parent()}/c" in Path(f"/proc/{state.pid}/cgroup").read_text()
    assert str(state.pid) in (cgroup_dir("c") / "cgroup.procs").read_text().split()
    rt2.start("c")
    assert rt2.wait("c", timeout=30)["exit_code"] == 0
    rt2.delete("c")
    # its own cgroup namespace, and a cgroup2 mount of it, though the host is hybrid
    assert log_text(log).split("\n")[:3] == ["0::/", "domain", "done"]
    assert not cgroup_dir("c").exists()


def test_pause_resume_and_kill_all(rt2: Runtime, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(tmp_path / "b", ["sh", "-c", "sleep 30 & sleep 30 & wait"], lower=busybox_rootfs)
    rt2.run("p", b)
    deadline = time.monotonic() + 5
    while len((cgroup_dir("p") / "cgroup.procs").read_text().split()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rt2.pause("p")  # cgroup.freeze, checked through cgroup.events
    assert rt2.state("p").status == "paused"
    assert "frozen 1" in (cgroup_dir("p") / "cgroup.events").read_text()
    rt2.resume("p")
    assert rt2.state("p").status == "running"
    rt2.kill_all("p", signal.SIGKILL)  # cgroup.kill: every process at once
    assert rt2.wait("p", timeout=10)["exit_code"] == 137
    rt2.delete("p")


def test_exec_and_stats(rt2: Runtime, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30"],
        lower=busybox_rootfs,
    )
    rt2.run("e", b)
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        assert rt2.exec("e", ["grep", "^0::", "/proc/self/cgroup"], stdio=(fd, fd, fd)) == 0
    finally:
        os.close(fd)
    assert out.read_text().strip() == "0::/"  # the exec'd process joined the container's cgroup
    time.sleep(0.3)
    stats = rt2.stats("e")
    assert stats.cpu_usage_ns and stats.cpu_usage_ns > 0  # cpu.stat needs no controller
    rt2.delete("e", force=True)


def test_device_rules_are_an_ebpf_program(
    rt2: Runtime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """Deny everything but the default devices: /dev/null works, /dev/mem (1:1) does not."""
    script = (
        "echo x > /dev/null && echo null-ok; mknod /tmp/mem c 1 1 && "
        "(head -c1 /tmp/mem >/dev/null 2>&1 && echo mem-read || echo mem-denied)"
    )
    b = bundle(tmp_path / "b", ["sh", "-c", script], lower=busybox_rootfs)
    log = tmp_path / "log"
    rt2.run("d", b, log_path=str(log))
    assert rt2.wait("d", timeout=30)["exit_code"] == 0
    rt2.delete("d")
    assert log_text(log).split() == ["null-ok", "mem-denied"]


def test_limits_that_need_controllers(rt2: Runtime, tmp_path: Path, busybox_rootfs: Path) -> None:
    missing = {"memory", "pids"} - controllers()
    if missing:
        pytest.skip(f"this cgroup2 hierarchy has no {' or '.join(sorted(missing))} controller")
    b = bundle(
        tmp_path / "b",
        ["cat", "/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/memory.max"],
        lower=busybox_rootfs,
        linux__resources={"pids": {"limit": 42}, "memory": {"limit": 64 << 20}},
    )
    log = tmp_path / "log"
    rt2.run("l", b, log_path=str(log))
    assert rt2.wait("l", timeout=30)["exit_code"] == 0
    rt2.delete("l")
    assert log_text(log).split() == ["42", str(64 << 20)]
