"""The v2 manager's core paths on a real cgroup2 hierarchy.

On a hybrid host the ``unified`` hierarchy has (almost) no controllers, but the core interface
files work there as on any cgroup2 mount: cgroup.procs, cgroup.freeze/cgroup.events,
cgroup.kill, cpu.stat. On a pure v2 host the root itself is used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.cgroups import Resources, open_manager
from runtime.cgroups.detect import mount_type
from runtime.cgroups.v2 import V2Manager


def _cgroup2_root() -> str | None:
    for candidate in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if mount_type(candidate) == "cgroup2":
            return candidate
    return None


ROOT = _cgroup2_root()

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(ROOT is None, reason="no cgroup2 hierarchy mounted"),
]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def manager(state_root: Path) -> Iterator[V2Manager]:
    assert ROOT is not None
    m = open_manager(f"test-{uuid.uuid4().hex[:12]}", root=ROOT)
    assert isinstance(m, V2Manager)
    m.create()
    yield m
    m.kill_all(signal.SIGKILL)
    m.destroy()


def _state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


def test_add_freeze_thaw_and_kill(manager: V2Manager, sleeper: subprocess.Popen[bytes]) -> None:
    manager.add_process(sleeper.pid)
    assert manager.pids() == [sleeper.pid]
    assert f"0::/{manager.path}" in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
    manager.freeze()
    assert manager.is_frozen()
    manager.thaw()
    assert not manager.is_frozen()
    # thawed: sleeping again (or, for an instant, running), not stopped in the freezer
    deadline = time.monotonic() + 2
    while _state(sleeper.pid) not in ("S", "R"):
        assert time.monotonic() < deadline, _state(sleeper.pid)
        time.sleep(0.01)
    manager.kill_all(signal.SIGKILL)  # through cgroup.kill
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    stats = manager.stats()
    assert stats.cpu_usage_ns is not None


def test_kill_all_with_another_signal(manager: V2Manager, sleeper: subprocess.Popen[bytes]) -> None:
    manager.add_process(sleeper.pid)
    manager.kill_all(signal.SIGTERM)  # freeze, signal, thaw
    assert sleeper.wait(timeout=5) == -signal.SIGTERM
    assert not manager.is_frozen()


def test_destroy_waits_for_the_kernel(state_root: Path) -> None:
    assert ROOT is not None
    m = open_manager(f"test-{uuid.uuid4().hex[:12]}", root=ROOT)
    m.create()
    proc = subprocess.Popen(["sleep", "60"])
    try:
        m.add_process(proc.pid)
        m.kill_all()
        start = time.monotonic()
        m.destroy()  # retries EBUSY until the dying task has left
        assert time.monotonic() - start < 2
        assert not m.exists()
    finally:
        proc.kill()
        proc.wait()


def test_device_rules_are_enforced_by_an_ebpf_filter(manager: V2Manager) -> None:
    """Deny everything, allow /dev/null and /dev/zero, then deny writes to /dev/null: a process
    in the cgroup is held to exactly that by the kernel, and a replaced filter takes over."""
    from runtime.cgroups import DeviceRule, devicefilter

    rules = (
        DeviceRule(allow=False),
        DeviceRule(allow=True, type="c", major=1, minor=3),
        DeviceRule(allow=True, type="c", major=1, minor=5),
        DeviceRule(allow=False, type="c", major=1, minor=3, access="w"),
    )
    manager.set(Resources(devices=rules))
    script = (
        "import os\n"
        "out = []\n"
        "for path, mode in (('/dev/null', os.O_RDONLY), ('/dev/null', os.O_WRONLY), ('/dev/zero', os.O_RDONLY), ('/dev/urandom', os.O_RDONLY)):\n"
        "    try:\n"
        "        os.close(os.open(path, mode)); out.append('ok')\n"
        "    except OSError:\n"
        "        out.append('denied')\n"
        "print(' '.join(out))\n"
    )
    import sys

    def run_inside() -> str:
        r, w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.stdin.read(1)\n{script}"],
            stdin=subprocess.PIPE,
            stdout=w,
        )
        os.close(w)
        manager.add_process(proc.pid)
        assert proc.stdin is not None
        proc.stdin.write(b"x")
        proc.stdin.close()
        proc.wait(10)
        with os.fdopen(r) as f:
            return f.read().strip()

    assert run_inside() == "ok denied ok denied"
    fd = os.open(manager.dir, os.O_RDONLY)
    try:
        assert len(devicefilter.attached(fd)) == 1
        manager.set(Resources(devices=(DeviceRule(allow=True),)))
        assert len(devicefilter.attached(fd)) == 1  # replaced, not stacked
    finally:
        os.close(fd)
    assert run_inside() == "ok ok ok ok"
