"""The v1 manager on the real kernel: limits really enforced, freezer, kill, stats, cleanup.

Each test uses its own cgroup ``orchestrator/<unique name>`` and the ``state_root`` fixture,
whose leak check fails a test that leaves a cgroup below an ``orchestrator`` parent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.cgroups import DeviceRule, Resources, detect_version, open_manager
from runtime.cgroups.v1 import V1Manager
from runtime.errors import SetupError

ROOT = Path("/sys/fs/cgroup")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        not (ROOT / "memory" / "cgroup.procs").exists() or detect_version(str(ROOT)) != 1,
        reason="needs cgroup v1 hierarchies under /sys/fs/cgroup",
    ),
]


class Children:
    """Processes started by a test; every one is killed and reaped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def gated(self, code: str) -> subprocess.Popen[bytes]:
        """A python child that runs ``code`` once a line arrives on its stdin (after it has
        been moved into the cgroup)."""
        prelude = "import sys; sys.stdin.readline()\n"
        proc = subprocess.Popen(
            [sys.executable, "-c", prelude + code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def sleep(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"])
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def go(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    yield kids
    kids.cleanup()


@pytest.fixture
def manager(state_root: Path, children: Children) -> Iterator[V1Manager]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    m = open_manager(name)
    assert isinstance(m, V1Manager)
    m.create()
    yield m
    m.kill_all(signal.SIGKILL)
    children.cleanup()
    m.destroy()


def cg(manager: V1Manager, subsystem: str, leaf: str) -> str:
    return Path(manager.dirs[subsystem], leaf).read_text().strip()


def test_create_makes_every_hierarchy_and_initialises_cpuset(manager: V1Manager) -> None:
    for directory in manager.dirs.values():
        assert Path(directory).is_dir()
    parent = Path(manager.dirs["cpuset"]).parent
    assert (parent / "cpuset.cpus").read_text().strip()
    assert cg(manager, "cpuset", "cpuset.cpus") == (ROOT / "cpuset/cpuset.cpus").read_text().strip()
    assert cg(manager, "cpuset", "cpuset.mems")


def test_resources_land_in_the_files(manager: V1Manager, children: Children) -> None:
    manager.set(
        Resources(
            memory_limit=64 << 20,
            memory_swap=96 << 20,
            memory_reservation=32 << 20,
            cpu_shares=512,
            cpu_quota=50000,
            cpu_period=100000,
            cpuset_cpus="0",
            cpuset_mems="0",
            pids_limit=20,
            devices=(DeviceRule(allow=False), DeviceRule(True, "c", 1, 3, "rwm")),
        )
    )
    child = children.sleep()
    manager.add_process(child.pid)
    assert manager.pids() == [child.pid]
    for subsystem in ("memory", "cpu", "pids", "freezer", "devices", "cpuset", "systemd"):
        assert str(child.pid) in cg(manager, subsystem, "cgroup.procs").split()
    assert cg(manager, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cg(manager, "memory", "memory.memsw.limit_in_bytes") == str(96 << 20)
    assert cg(manager, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert cg(manager, "cpu", "cpu.shares") == "512"
    assert cg(manager, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cg(manager, "cpu", "cpu.cfs_period_us") == "100000"
    assert cg(manager, "cpuset", "cpuset.cpus") == "0"
    assert cg(manager, "pids", "pids.max") == "20"
    assert cg(manager, "devices", "devices.list") == "c 1:3 rwm"


def test_memory_can_be_raised_and_lowered_with_swap(manager: V1Manager) -> None:
    manager.set(Resources(memory_limit=32 << 20, memory_swap=32 << 20))
    manager.set(Resources(memory_limit=128 << 20, memory_swap=256 << 20))  # memsw first
    assert cg(manager, "memory", "memory.limit_in_bytes") == str(128 << 20)
    manager.set(Resources(memory_limit=16 << 20, memory_swap=16 << 20))  # memory first
    assert cg(manager, "memory", "memory.memsw.limit_in_bytes") == str(16 << 20)
    manager.set(Resources(memory_limit=-1))  # unlimited memory lifts memsw too
    assert int(cg(manager, "memory", "memory.memsw.limit_in_bytes")) > 2**62


def test_memory_limit_is_enforced_by_the_oom_killer(manager: V1Manager, children: Children) -> None:
    manager.set(Resources(memory_limit=48 << 20, memory_swap=48 << 20))
    hog = children.gated("data = b'x' * (200 << 20)\nprint('survived')")
    manager.add_process(hog.pid)
    assert not manager.oom_killed()
    go(hog)
    assert hog.wait(timeout=30) == -signal.SIGKILL
    assert manager.oom_killed()
    assert (manager.stats().oom_kills or 0) >= 1
    stats = manager.stats()
    assert stats.memory_max_usage is not None and stats.memory_max_usage >= 40 << 20


def test_pids_limit_is_enforced(manager: V1Manager, children: Children) -> None:
    manager.set(Resources(pids_limit=4))
    code = (
        "import os, time\n"
        "kids, refused = [], 0\n"
        "for _ in range(8):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        refused += 1\n"
        "        continue\n"
        "    if pid == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "print(len(kids), refused, flush=True)\n"
        "for pid in kids:\n"
        "    os.kill(pid, 9)\n"
        "    os.waitpid(pid, 0)\n"
    )
    forker = children.gated(code)
    manager.add_process(forker.pid)
    go(forker)
    out, err = forker.communicate(timeout=30)
    assert forker.returncode == 0, err
    made, refused = map(int, out.split())
    assert (made, refused) == (3, 5)  # the forker itself is the 4th
    assert manager.stats().pids_current == 0


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_freeze_really_stops_and_thaw_resumes(manager: V1Manager, children: Children) -> None:
    spinner = children.gated("while True: pass")
    manager.add_process(spinner.pid)
    go(spinner)
    time.sleep(0.2)
    manager.freeze()
    assert manager.is_frozen()
    assert cg(manager, "freezer", "freezer.state") == "FROZEN"
    before = _cpu_ticks(spinner.pid)
    time.sleep(0.5)
    assert _cpu_ticks(spinner.pid) == before
    manager.thaw()
    assert not manager.is_frozen()
    time.sleep(0.5)
    assert _cpu_ticks(spinner.pid) > before
    stats = manager.stats()
    assert stats.cpu_usage_ns is not None and stats.cpu_usage_ns > 100_000_000


def test_kill_all_kills_every_process(manager: V1Manager, children: Children) -> None:
    first, second = children.sleep(), children.sleep()
    forker = children.gated(
        "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nelse:\n    time.sleep(60)\n"
    )
    for proc in (first, second, forker):
        manager.add_process(proc.pid)
    go(forker)
    deadline = time.monotonic() + 5
    while len(manager.pids()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(manager.pids()) == 4
    manager.kill_all(signal.SIGKILL)
    for proc in (first, second, forker):
        assert proc.wait(timeout=5) == -signal.SIGKILL
    assert not manager.is_frozen()
    deadline = time.monotonic() + 5
    while manager.pids() and time.monotonic() < deadline:  # the orphan is reaped by init
        time.sleep(0.01)
    assert manager.pids() == []


def test_device_rules_are_enforced(manager: V1Manager, children: Children) -> None:
    manager.set(Resources(devices=(DeviceRule(allow=False), DeviceRule(True, "c", 1, 5, "rw"))))
    code = (
        "import os\n"
        "os.close(os.open('/dev/zero', os.O_RDONLY))\n"
        "try:\n"
        "    os.open('/dev/null', os.O_RDONLY)\n"
        "except PermissionError:\n"
        "    print('denied')\n"
    )
    probe = children.gated(code)
    manager.add_process(probe.pid)
    go(probe)
    out, err = probe.communicate(timeout=10)
    assert probe.returncode == 0, err
    assert out.strip() == b"denied"


def test_kernel_refusal_is_a_readable_error(manager: V1Manager) -> None:
    manager.set(Resources(memory_limit=32 << 20, memory_swap=32 << 20))
    # the cpuset of a child must lie inside its parent's: a CPU that does not exist
    with pytest.raises(SetupError) as info:
        manager.set(Resources(cpuset_cpus="64"))
    message = str(info.value)
    assert "cpuset.cpus" in message and "'64'" in message and "\n" not in message


def test_destroy_removes_every_directory(state_root: Path, children: Children) -> None:
    m = open_manager(f"test-{uuid.uuid4().hex[:12]}")
    assert isinstance(m, V1Manager)
    m.create()
    child = children.sleep()
    m.add_process(child.pid)
    m.kill_all()
    child.wait()
    m.destroy()
    assert not m.exists()
    assert not any(os.path.exists(d) for d in m.dirs.values())
    m.destroy()  # idempotent


def test_destroy_with_live_processes_fails_and_keeps_the_cgroup(
    manager: V1Manager, children: Children, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runtime.cgroups.v1.DESTROY_TIMEOUT", 0.1)
    child = children.sleep()
    manager.add_process(child.pid)
    with pytest.raises(SetupError, match="busy"):
        manager.destroy()
    assert manager.exists()
