"""The cgroup v2 start path: the container's init is born in its cgroup (clone3 with
CLONE_INTO_CGROUP), never moved there; tested on this machine's real cgroup2 hierarchy
(``unified`` on the hybrid test machines, / on a pure v2 host)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import trace
from runtime.api import Runtime
from runtime.linux import syscalls as sc
from tests.busybox import bundle
from tests.conftest import current_cgroup_parent
from tests.integration.runtime.test_cgroup_v2_runtime import V2_ROOT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(V2_ROOT is None, reason="no cgroup2 hierarchy is mounted"),
]


def _dir(name: str) -> Path:
    assert V2_ROOT is not None
    return Path(V2_ROOT, current_cgroup_parent(), name)


@pytest.fixture
def probe(state_root: Path) -> Iterator[Path]:
    path = _dir("probe")
    path.mkdir(parents=True)
    yield path
    path.rmdir()


def test_a_child_is_in_the_cgroup_from_its_first_instruction(probe: Path) -> None:
    fd = os.open(probe, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    reader, writer = os.pipe()
    try:
        pid = sc.fork_into_cgroup(fd)
        if pid == 0:  # the child: what it reads first is where it was born
            try:
                with open("/proc/self/cgroup", "rb") as f:
                    os.write(writer, f.read())
            finally:
                os._exit(7)
    finally:
        os.close(fd)
        os.close(writer)
    with os.fdopen(reader, "rb") as f:
        where = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7
    assert f"0::/{current_cgroup_parent()}/probe\n" in where


def test_a_directory_that_is_no_cgroup_forks_nothing(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    before = _children()  # (this process may have others: monitors of earlier tests)
    try:
        with pytest.raises(OSError, match="clone3"):
            sc.fork_into_cgroup(fd)
    finally:
        os.close(fd)
    assert _children() <= before


def _children() -> set[int]:
    """This process's children, from every thread's /proc list."""
    me = os.getpid()
    found: set[int] = set()
    for task in os.listdir(f"/proc/{me}/task"):
        with open(f"/proc/{me}/task/{task}/children") as f:
            found.update(int(pid) for pid in f.read().split())
    return found


@pytest.fixture(params=["direct", "fork server"])
def traced(
    request: pytest.FixtureRequest,
    state_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Runtime, Path]]:
    assert V2_ROOT is not None
    marks = tmp_path / "trace"
    monkeypatch.setenv("ORCHESTRATOR_TRACE", str(marks))  # (a fork server started now traces)
    trace.configure(str(marks))
    runtime = Runtime(
        state_root / "runtime", cgroup_root=V2_ROOT, fork_server=request.param == "fork server"
    )
    try:
        yield runtime, marks
    finally:
        trace.configure(None)
        for state in runtime.list():
            runtime.delete(state.id, force=True)
        if request.param == "fork server":
            from runtime.forkserver import stop

            stop(runtime.root)


def test_a_v2_container_is_born_in_its_cgroup_and_killed_through_cgroup_kill(
    traced: tuple[Runtime, Path], tmp_path: Path, busybox_rootfs: Path
) -> None:
    rt, marks = traced
    b = bundle(tmp_path / "b", ["sh", "-c", "sleep 1000 & exec sleep 1001"], lower=busybox_rootfs)
    state = rt.run("fast", b)
    labels = [line.split()[1] for line in marks.read_text().splitlines()]
    assert "init-born-in-cgroup" in labels  # clone3 into the cgroup, no move after
    cgroup = _dir("fast")
    assert f"0::/{current_cgroup_parent()}/fast" in Path(f"/proc/{state.pid}/cgroup").read_text()
    deadline = time.monotonic() + 5
    while len((cgroup / "cgroup.procs").read_text().split()) < 2:
        assert time.monotonic() < deadline, "the background sleep never started"
        time.sleep(0.02)
    rt.kill_all("fast", signal.SIGKILL)  # cgroup.kill: both at once
    assert (rt.wait("fast", timeout=10) or {}).get("exit_code") == 137
    assert "populated 0" in (cgroup / "cgroup.events").read_text()
    rt.delete("fast")
    assert not cgroup.exists()


@pytest.fixture
def pooled(
    state_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, busybox_rootfs: Path
) -> Iterator[tuple[Runtime, Path]]:
    """A fork server on the cgroup2 hierarchy, tracing, its first pre-made container ready."""
    assert V2_ROOT is not None
    marks = tmp_path / "trace"
    monkeypatch.setenv("ORCHESTRATOR_TRACE", str(marks))  # (passed on to the fork server)
    runtime = Runtime(state_root / "runtime", cgroup_root=V2_ROOT, fork_server=True)
    try:
        runtime.run("first", bundle(tmp_path / "first", ["true"], lower=busybox_rootfs))
        runtime.wait("first", timeout=10)
        runtime.delete("first")
        _pool_ready(runtime)
        yield runtime, marks
    finally:
        for state in runtime.list():
            runtime.delete(state.id, force=True)
        from runtime.forkserver import stop

        stop(runtime.root)


def _pool_ready(runtime: Runtime) -> None:
    from runtime.forkserver import pool_ready

    deadline = time.monotonic() + 10
    while pool_ready(runtime.root) < 1:
        assert time.monotonic() < deadline, "no pre-made container on cgroup v2"
        time.sleep(0.02)


def _born(marks: Path) -> int:
    return sum(1 for line in marks.read_text().splitlines() if " premade-v2-born " in line)


def test_a_premade_v2_container_is_born_in_its_cgroup(
    pooled: tuple[Runtime, Path], tmp_path: Path, busybox_rootfs: Path
) -> None:
    rt, marks = pooled
    log = tmp_path / "log"
    script = "grep ^0:: /proc/self/cgroup; echo pid $$; ls /sys/fs/cgroup/cgroup.procs; sleep 1000"
    b = bundle(tmp_path / "b", ["sh", "-c", script], lower=busybox_rootfs)
    state = rt.run("fast", b, log_path=str(log))
    assert _born(marks) == 1  # the pre-made holder cloned the init into its new cgroup
    cgroup = _dir("fast")
    assert f"0::/{current_cgroup_parent()}/fast" in Path(f"/proc/{state.pid}/cgroup").read_text()
    assert str(state.pid) in (cgroup / "cgroup.procs").read_text().split()
    deadline = time.monotonic() + 5
    while not log.exists() or "cgroup.procs" not in log.read_text():
        assert time.monotonic() < deadline, "no output"
        time.sleep(0.02)
    text = "".join(json.loads(line)["log"] for line in log.read_text().splitlines())
    # its own cgroup namespace, rooted there; PID 1; a cgroup2 /sys/fs/cgroup
    assert text.startswith("0::/\npid 1\n/sys/fs/cgroup/cgroup.procs\n"), text
    rt.kill_all("fast", signal.SIGKILL)
    assert (rt.wait("fast", timeout=10) or {}).get("exit_code") == 137
    rt.delete("fast")
    assert not cgroup.exists()


def test_a_premade_v2_container_created_then_started(
    pooled: tuple[Runtime, Path], tmp_path: Path, busybox_rootfs: Path
) -> None:
    rt, marks = pooled
    b = bundle(tmp_path / "b", ["sh", "-c", "exit 3"], lower=busybox_rootfs)
    state = rt.create("two", b)
    assert rt.state("two").status == "created" and state.pid > 0
    rt.start("two")
    assert (rt.wait("two", timeout=10) or {}).get("exit_code") == 3
    assert _born(marks) == 1
    rt.delete("two")
    assert not _dir("two").exists()


def test_a_config_the_holder_does_not_fit_starts_the_ordinary_way(
    pooled: tuple[Runtime, Path], tmp_path: Path, busybox_rootfs: Path
) -> None:
    rt, marks = pooled
    b = bundle(tmp_path / "b", ["true"], lower=busybox_rootfs)
    config = json.loads((b / "config.json").read_text())
    config["linux"]["cgroupsPath"] = "own/place"  # below our parent: not the pool's way
    (b / "config.json").write_text(json.dumps(config))
    rt.run("other", b)
    assert (rt.wait("other", timeout=10) or {}).get("exit_code") == 0
    assert _born(marks) == 0
    rt.delete("other")
    assert not _dir("own/place").exists()
