"""The v2 manager on a cgroup2 tree laid out in a temp dir (regular files named like the kernel's).

The manager never creates interface files (cgroupfs does that), so after ``create()`` the tests
play the kernel's part with ``populate``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from runtime.cgroups import (
    DEFAULT_DEVICE_RULES,
    DeviceRule,
    Resources,
    detect_version,
    open_manager,
)
from runtime.cgroups.detect import mount_type
from runtime.cgroups.v2 import V2Manager
from runtime.errors import Error, SetupError

ALL = "cpuset cpu io memory hugetlb pids rdma misc"
FILES = {
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cgroup.procs": "",
    "cgroup.type": "domain\n",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "memory.max": "max\n",
    "memory.swap.max": "max\n",
    "memory.low": "0\n",
    "memory.current": "0\n",
    "memory.peak": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "cpu.weight": "100\n",
    "cpu.max": "max 100000\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "pids.max": "max\n",
    "pids.current": "0\n",
}


def populate(directory: Path, **overrides: str) -> None:
    for name, text in {**FILES, **overrides}.items():
        (directory / name).write_text(text)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    populate(root, **{"cgroup.controllers": ALL + "\n"})
    return root


def created(root: Path, name: str = "c1", **overrides: str) -> tuple[V2Manager, Path]:
    manager = open_manager(name, root=str(root))
    assert isinstance(manager, V2Manager)
    manager.create()
    directory = root / "orchestrator" / name
    populate(directory, **overrides)
    return manager, directory


def test_detects_v2_on_a_laid_out_root(root: Path, tmp_path: Path) -> None:
    assert detect_version(str(root)) == 2
    empty = tmp_path / "v1ish"
    (empty / "memory").mkdir(parents=True)
    assert detect_version(str(empty)) == 1
    assert isinstance(open_manager("x", root=str(root)), V2Manager)


def test_detection_reads_mountinfo_for_a_mount_point(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "50 23 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n"
    )
    info = str(mountinfo)
    assert detect_version("/sys/fs/cgroup", mountinfo=info) == 1  # hybrid: v1, never refused
    assert detect_version("/sys/fs/cgroup/unified", mountinfo=info) == 2
    assert mount_type("/mnt/with space", info) == "cgroup2"
    assert mount_type("/nowhere", info) is None


def test_create_enables_controllers_top_down(root: Path) -> None:
    parent = root / "orchestrator"
    parent.mkdir()
    populate(parent, **{"cgroup.controllers": "cpu memory pids\n"})
    manager, directory = created(root)
    # only what each level offers, in one write per level
    assert (root / "cgroup.subtree_control").read_text() == "+cpuset +cpu +memory +pids"
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert directory.is_dir()
    assert manager.exists()
    manager.create()  # idempotent


def test_create_skips_controllers_already_enabled(root: Path) -> None:
    (root / "cgroup.subtree_control").write_text("cpuset cpu memory pids\n")
    created(root)
    assert (root / "cgroup.subtree_control").read_text() == "cpuset cpu memory pids\n"


def test_every_resource_lands_in_its_file_converted(root: Path) -> None:
    manager, d = created(root)
    manager.set(
        Resources(
            memory_limit=256 << 20,
            memory_swap=384 << 20,
            memory_reservation=128 << 20,
            cpu_shares=2000,
            cpu_quota=50000,
            cpu_period=100000,
            cpuset_cpus="0-1",
            cpuset_mems="0",
            pids_limit=42,
        )
    )
    assert (d / "memory.max").read_text() == str(256 << 20)
    assert (d / "memory.swap.max").read_text() == str(128 << 20)  # swap alone
    assert (d / "memory.low").read_text() == str(128 << 20)
    assert (d / "cpu.weight").read_text() == "170"
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpuset.cpus").read_text() == "0-1"
    assert (d / "cpuset.mems").read_text() == "0"
    assert (d / "pids.max").read_text() == "42"


def test_unlimited_values(root: Path) -> None:
    manager, d = created(root)
    manager.set(Resources(memory_limit=-1, cpu_quota=-1, pids_limit=-1, memory_reservation=-1))
    assert (d / "memory.max").read_text() == "max"
    assert (d / "memory.swap.max").read_text() == "max"
    assert (d / "cpu.max").read_text() == "max"
    assert (d / "pids.max").read_text() == "max"
    assert (d / "memory.low").read_text() == "0"


def test_unset_fields_are_left_alone(root: Path) -> None:
    manager, d = created(root)
    manager.set(Resources(pids_limit=5))
    assert (d / "memory.max").read_text() == "max\n"
    assert (d / "cpu.weight").read_text() == "100\n"


def test_swap_limit_without_swap_accounting_is_refused(root: Path) -> None:
    manager, d = created(root)
    (d / "memory.swap.max").unlink()
    manager.set(Resources(memory_limit=100 << 20, memory_swap=-1))  # nothing to write: fine
    with pytest.raises(SetupError, match=r"memory\.swap\.max is missing"):
        manager.set(Resources(memory_limit=100 << 20, memory_swap=200 << 20))


def test_missing_controller_file_is_a_readable_error(root: Path) -> None:
    manager, d = created(root)
    (d / "pids.max").unlink()
    with pytest.raises(SetupError) as info:
        manager.set(Resources(pids_limit=3))
    message = str(info.value)
    assert "pids.max" in message and "'3'" in message and "not enabled" in message


def test_device_rules_on_a_laid_out_tree_are_recorded(root: Path) -> None:
    # (the eBPF filter itself is tested on the kernel's cgroup2 hierarchy, in integration)
    manager, d = created(root)
    assert manager.supports_device_rules is True
    manager.set(Resources(devices=(DeviceRule(allow=False), *DEFAULT_DEVICE_RULES)))
    lines = (d / "devices.rules").read_text().splitlines()
    assert lines[0] == "deny a None None rwm"
    assert "allow c 1 3 rwm" in lines


def test_stats_parsing(root: Path) -> None:
    manager, _ = created(
        root,
        **{
            "memory.current": "1048576\n",
            "memory.peak": "2097152\n",
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
            "pids.current": "3\n",
        },
    )
    stats = manager.stats()
    assert stats.memory_usage == 1 << 20
    assert stats.memory_max_usage == 2 << 20
    assert stats.cpu_usage_ns == 1_500_000
    assert stats.pids_current == 3
    assert stats.oom_kills == 0


def test_stats_without_optional_files(root: Path) -> None:
    manager, d = created(root)
    (d / "memory.peak").unlink()  # kernels before 5.19
    (d / "pids.current").unlink()  # pids controller not enabled
    stats = manager.stats()
    assert stats.memory_max_usage is None
    assert stats.pids_current is None


def test_oom_flag_from_memory_events(root: Path) -> None:
    manager, d = created(root)
    assert manager.oom_killed() is False
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    assert manager.oom_killed() is True
    assert manager.stats().oom_kills == 1


def test_freeze_writes_the_file_and_reads_events(root: Path) -> None:
    manager, d = created(root, **{"cgroup.events": "populated 1\nfrozen 1\n"})
    manager.freeze()
    assert (d / "cgroup.freeze").read_text() == "1"
    assert manager.is_frozen()
    manager.thaw()
    assert (d / "cgroup.freeze").read_text() == "0"
    (d / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert not manager.is_frozen()


def test_freeze_times_out_and_thaws_back(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runtime.cgroups.v2.FREEZE_TIMEOUT", 0.05)
    manager, d = created(root)  # events keep saying frozen 0
    with pytest.raises(SetupError, match="cannot freeze"):
        manager.freeze()
    assert (d / "cgroup.freeze").read_text() == "0"


def test_kill_all_uses_cgroup_kill(root: Path) -> None:
    manager, d = created(root)
    manager.kill_all(signal.SIGKILL)
    assert (d / "cgroup.kill").read_text() == "1"


def test_kill_all_other_signal_signals_each_pid(root: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        manager, d = created(
            root, **{"cgroup.procs": f"{child.pid}\n", "cgroup.events": "frozen 1\n"}
        )
        assert manager.pids() == [child.pid]
        manager.kill_all(signal.SIGTERM)
        assert child.wait(timeout=5) == -signal.SIGTERM
        assert (d / "cgroup.kill").read_text() == ""
        assert (d / "cgroup.freeze").read_text() == "0"  # thawed again
    finally:
        child.kill()
        child.wait()


def test_pids_include_child_cgroups(root: Path) -> None:
    manager, d = created(root, **{"cgroup.procs": "10\n11\n"})
    (d / "inner").mkdir()
    (d / "inner" / "cgroup.procs").write_text("12\n")
    assert manager.pids() == [10, 11, 12]


def test_add_process_writes_cgroup_procs(root: Path) -> None:
    manager, d = created(root)
    manager.add_process(1234)
    assert (d / "cgroup.procs").read_text() == "1234"


def test_destroy_removes_dirs_and_keeps_the_parent(root: Path) -> None:
    manager, d = created(root)
    (d / "inner").mkdir()
    populate(d / "inner")
    manager.destroy()
    assert not d.exists()
    assert (root / "orchestrator").is_dir()
    assert not manager.exists()
    manager.destroy()  # nothing left: no error


def test_names_are_validated(root: Path) -> None:
    for bad in ("", ".", "..", "a/b", "a\0b", "x" * 129, "cgroup.procs"):
        with pytest.raises(Error):
            open_manager(bad, root=str(root))
    with pytest.raises(Error):
        open_manager("ok", root=str(root), parent="../etc")
    nested = open_manager("ok", root=str(root), parent="orchestrator/proj")
    assert nested.path == "orchestrator/proj/ok"


def test_forced_version(root: Path) -> None:
    assert open_manager("x", root=str(root), version=1).version == 1
    with pytest.raises(Error, match="1 or 2"):
        open_manager("x", root=str(root), version=3)


def test_create_refuses_domain_invalid_and_cleans_up(root: Path) -> None:
    parent = root / "orchestrator"
    parent.mkdir()
    populate(parent)
    target = parent / "c1"
    # pre-create the file the kernel would show, then make mkdir "succeed" into it
    real_mkdir = os.mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        if path == str(target):
            (target / "cgroup.type").write_text("domain invalid\n")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "mkdir", mkdir)
        with pytest.raises(SetupError, match="domain invalid"):
            open_manager("c1", root=str(root)).create()
    assert not target.exists()
