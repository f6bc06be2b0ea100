"""Launching through the fork server: same behaviour, monitors independent of the server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runtime.api import Runtime
from runtime.forkserver import SOCKET_NAME, stop
from tests.busybox import bundle
from tests.conftest import current_cgroup_parent

pytestmark = pytest.mark.root


def test_fork_server_launches_and_containers_outlive_it(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    root = state_root / "runtime"
    rt = Runtime(root, fork_server=True)
    b = bundle(tmp_path / "b", ["sh", "-c", "sleep 0.5; exit 9"], lower=busybox_rootfs)
    state = rt.run("via-server", b)
    assert state.status == "running"
    assert (root / SOCKET_NAME).exists()
    stop(root)  # the server goes; the container and its monitor stay
    assert not (root / SOCKET_NAME).exists()
    assert rt.state("via-server").status == "running"
    assert rt.wait("via-server", timeout=10)["exit_code"] == 9
    rt.delete("via-server")
    # a new server starts on demand
    b2 = bundle(tmp_path / "b2", ["true"], lower=busybox_rootfs)
    rt.run("again", b2)
    assert rt.wait("again", timeout=10)["exit_code"] == 0
    rt.delete("again")


def test_fork_server_reports_setup_errors(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    from runtime.errors import SetupError

    rt = Runtime(state_root / "runtime", fork_server=True)
    b = bundle(tmp_path / "b", ["no-such-binary"], lower=busybox_rootfs)
    with pytest.raises(SetupError, match="executable file not found"):
        rt.run("bad", b)
    assert not (state_root / "runtime" / "bad").exists()


def test_fork_server_create_then_start(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    rt = Runtime(state_root / "runtime", fork_server=True)
    b = bundle(tmp_path / "b", ["sh", "-c", "exit 4"], lower=busybox_rootfs)
    assert rt.create("two-step", b).status == "created"
    time.sleep(0.05)
    assert rt.state("two-step").status == "created"
    rt.start("two-step")
    assert rt.wait("two-step", timeout=10)["exit_code"] == 4
    rt.delete("two-step")


def _pool_cgroups() -> set[str]:
    parent = Path("/sys/fs/cgroup/pids") / current_cgroup_parent()
    return (
        {p.name for p in parent.iterdir() if p.name.startswith("_pool-")}
        if parent.is_dir()
        else set()
    )


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _under(pid: int, root: Path) -> bool:
    """Whether ``pid`` was forked by the fork server of ``root`` (its command line says)."""
    try:
        return str(root) in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


@pytest.mark.cgroup_v1
def test_pool_serves_default_containers_and_falls_back_for_others(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    root = state_root / "runtime"
    rt = Runtime(root, fork_server=True)
    before = _pool_cgroups()
    b = bundle(
        tmp_path / "b", ["sh", "-c", "cat /proc/self/cgroup | grep pids"], lower=busybox_rootfs
    )
    rt.run("warm", b)  # starts the server, which then makes a pre-made container
    rt.wait("warm", timeout=10)
    rt.delete("warm")
    deadline = time.monotonic() + 10
    while not (_pool_cgroups() - before):
        assert time.monotonic() < deadline, "the fork server made no pre-made container"
        time.sleep(0.02)
    sleeper = bundle(tmp_path / "s", ["sleep", "30"], lower=busybox_rootfs)
    waiting = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if _comm(pid) == "orc-pool" and _under(pid, root)
    ]
    assert waiting and all(os.sched_getscheduler(p) == os.SCHED_IDLE for p in waiting)
    state = rt.run("pooled", sleeper)
    # made at idle priority, it runs at the usual one (and so does its monitor)
    assert os.sched_getscheduler(state.pid) == os.SCHED_OTHER
    assert os.sched_getscheduler(int(state.record["monitor_pid"])) == os.SCHED_OTHER
    # the container runs in a cgroup of its own name, whatever the pre-made one was called
    parent = current_cgroup_parent()
    assert f"pids:/{parent}/pooled\n" in Path(f"/proc/{state.pid}/cgroup").read_text()
    assert Path(f"/sys/fs/cgroup/pids/{parent}/pooled").is_dir()
    rt.delete("pooled", force=True)
    # a container with other namespaces (no network namespace) is served the usual way
    host_net = bundle(
        tmp_path / "hn",
        ["sh", "-c", "ls /sys/class/net | grep -c ."],
        lower=busybox_rootfs,
        linux__namespaces=[{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")],
    )
    deadline = time.monotonic() + 10
    while not (_pool_cgroups() - before):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    log2 = tmp_path / "log2"
    rt.run("hostnet", host_net, log_path=str(log2))
    assert rt.wait("hostnet", timeout=10)["exit_code"] == 0
    rt.delete("hostnet")
    assert int(log2.read_text().split('"log": "')[1].split("\\n")[0]) > 1  # the host's interfaces
    stop(root)
    assert _pool_cgroups() - before == set()  # stopping the server removes its pre-made container


def test_the_pool_grows_to_the_bursts_it_sees_and_makes_nothing_during_one(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    from runtime.forkserver import _Pool, pool_ready

    root = state_root / "runtime"
    rt = Runtime(root, fork_server=True)
    b = bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs)
    rt.run("first", b)
    deadline = time.monotonic() + 10
    while pool_ready(root) < _Pool.SIZE:
        assert time.monotonic() < deadline, "the pool did not fill"
        time.sleep(0.02)
    time.sleep(_Pool.BURST_GAP + 0.1)  # ("first" is no part of the burst)
    burst = _Pool.SIZE + 3
    try:
        for i in range(burst):  # (back to back: one burst)
            rt.run(f"burst-{i}", b)
        # its first two came from the pool, which made no shell while the burst went on
        assert pool_ready(root) == 0
        deadline = time.monotonic() + 15
        while pool_ready(root) < min(burst, _Pool.MOST):
            assert time.monotonic() < deadline, f"the pool holds {pool_ready(root)} after it"
            time.sleep(0.05)
        time.sleep(0.3)
        assert pool_ready(root) == min(burst, _Pool.MOST)  # and no more
    finally:
        for name in ["first", *(f"burst-{i}" for i in range(burst))]:
            try:
                rt.delete(name, force=True)
            except Exception:
                pass
        stop(root)


def test_user_namespace_through_the_fork_server(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    rt = Runtime(state_root / "runtime", fork_server=True)
    mapping = [{"containerID": 0, "hostID": 300000, "size": 65536}]
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "cat /proc/self/uid_map"],
        lower=busybox_rootfs,
        linux__namespaces=[
            {"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "cgroup", "user")
        ],
        linux__uidMappings=mapping,
        linux__gidMappings=mapping,
    )
    log = tmp_path / "log"
    rt.run("mapped", b, log_path=str(log))
    assert rt.wait("mapped", timeout=10)["exit_code"] == 0
    rt.delete("mapped")
    assert "300000" in log.read_text()


def test_a_killed_fork_server_leaves_no_pre_made_container_behind(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """SIGKILL gives the server no chance to clean up: its shells notice it is gone (their
    sockets end) and remove their init, cgroup and themselves."""
    import os
    import signal

    from runtime.forkserver import pool_ready

    root = state_root / "runtime"
    before = _pool_cgroups()
    Runtime(root, fork_server=True).fork_server_client()._connect().close()
    deadline = time.monotonic() + 10
    while pool_ready(root) < 2:
        assert time.monotonic() < deadline, "the pool did not fill"
        time.sleep(0.02)
    os.kill(_server_pid(root), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pool_cgroups() - before:
        assert time.monotonic() < deadline, "pre-made containers outlived their server"
        time.sleep(0.02)


def _server_pid(root: Path) -> int:
    import json
    import socket

    from runtime.forkserver import SOCKET_NAME

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(root / SOCKET_NAME))
        sock.sendall(b"ping\n")
        reply = sock.makefile().readline()
    return int(json.loads(reply)["pong"])


@pytest.mark.cgroup_v1
def test_a_request_for_another_cgroup_parent_is_not_served_from_the_pool(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """The pool's pre-made containers live under the parent the server was started with; a
    request for another parent takes the ordinary path, and its container and its monitor
    both use the parent it asked for."""
    from runtime.forkserver import pool_ready

    root = state_root / "runtime"
    rt = Runtime(root, fork_server=True)
    rt.fork_server_client()._connect().close()
    deadline = time.monotonic() + 10
    while pool_ready(root) < 1:
        assert time.monotonic() < deadline, "the pool did not fill"
        time.sleep(0.02)
    other_parent = f"{current_cgroup_parent()}/elsewhere"
    other = Runtime(root, fork_server=True, cgroup_parent=other_parent)
    state = other.run("elsewhere", bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs))
    assert f"pids:/{other_parent}/elsewhere\n" in Path(f"/proc/{state.pid}/cgroup").read_text()
    assert Path(f"/sys/fs/cgroup/pids/{other_parent}/elsewhere").is_dir()
    assert other.stats("elsewhere") is not None  # the runtime finds it where it asked
    other.kill("elsewhere", 9)
    assert other.wait("elsewhere", timeout=10, until_removed=True)["exit_code"] == 137
    # the monitor removed the cgroup where it was, and the pool's own are untouched
    assert not Path(f"/sys/fs/cgroup/pids/{other_parent}/elsewhere").exists()
    other.delete("elsewhere")
    assert pool_ready(root) >= 1
    stop(root)
    for controller in Path("/sys/fs/cgroup").iterdir():
        if (controller / other_parent).is_dir():
            (controller / other_parent).rmdir()
