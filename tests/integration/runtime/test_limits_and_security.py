"""cgroup limits and the default security profile, with real containers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.busybox import bundle

pytestmark = pytest.mark.root


def run(
    rt: Any, tmp_path: Path, rootfs: Path, args: list[str], name: str = "c", **changes: Any
) -> tuple[dict[str, Any], str]:
    b = bundle(tmp_path / name, args, lower=rootfs, **changes)
    log = tmp_path / f"{name}.log"
    rt.run(name, b, log_path=str(log))
    result = rt.wait(name, timeout=60)
    rt.delete(name)
    text = (
        "".join(json.loads(line)["log"] for line in log.read_text().splitlines())
        if log.exists()
        else ""
    )
    return result, text


def test_memory_limit_oom_kills_with_137(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    # a shell variable doubling in size: grows past 32 MiB quickly
    hog = "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"
    limit = 32 * 1024 * 1024
    resources = {"memory": {"limit": limit, "swap": limit}}
    result, _ = run(rt, tmp_path, busybox_rootfs, ["sh", "-c", hog], linux__resources=resources)
    assert result["exit_code"] == 137
    assert result["oom_killed"] is True


@pytest.mark.cgroup_v1
def test_pids_limit_contains_a_fork_bomb(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    script = (
        "(i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done) 2>/dev/null; "
        # builtins only from here: no pid is left to fork a cat
        "read c < /sys/fs/cgroup/pids/pids.current; read m < /sys/fs/cgroup/pids/pids.max; "
        "read f < /sys/fs/cgroup/pids/pids.events; echo $c $m $f"
    )
    _, out = run(
        rt, tmp_path, busybox_rootfs, ["sh", "-c", script], linux__resources={"pids": {"limit": 20}}
    )
    current, maximum, _, failures = out.split()
    assert maximum == "20"
    assert int(current) <= 20
    assert int(failures) > 0  # forks were refused


def test_cpu_quota_slows_a_busy_loop(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    loop = "i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done"

    def timed(name: str, resources: dict[str, Any]) -> float:
        b = bundle(
            tmp_path / name, ["sh", "-c", loop], lower=busybox_rootfs, linux__resources=resources
        )
        rt.run(name, b)
        started = time.monotonic()  # the launch itself is not what the quota slows
        result = rt.wait(name, timeout=60)
        elapsed = time.monotonic() - started
        rt.delete(name)
        assert result["exit_code"] == 0
        return elapsed

    free = timed("free", {})
    slow = timed("slow", {"cpu": {"quota": 10000, "period": 100000}})  # a tenth of a CPU
    assert slow > free * 3, (free, slow)


def test_default_capabilities_and_masks(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    script = (
        "mount -t tmpfs none /mnt 2>/dev/null && echo mount-ok || echo mount-denied; "
        "cat /proc/kcore /proc/timer_list /proc/keys 2>/dev/null | wc -c; "
        "(echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys-writable || echo sys-readonly; "
        "grep CapEff /proc/self/status; "
        "(echo x > /sys/kernel/uevent_helper) 2>/dev/null && echo sysfs-writable || echo sysfs-readonly; "
        "mknod /tmp/sda b 8 0 && (head -c1 /tmp/sda >/dev/null 2>&1 && echo disk-read || echo disk-denied)"
    )
    result, out = run(rt, tmp_path, busybox_rootfs, ["sh", "-c", script])
    assert result["exit_code"] == 0
    lines = out.split("\n")
    assert lines[0] == "mount-denied"
    # /proc/kcore (absent from this kernel), timer_list and keys read as /dev/null
    assert Path("/proc/timer_list").read_text()
    assert lines[1].strip() == "0"
    assert lines[2] == "sys-readonly"
    assert lines[3].split()[1] == "00000000a80425fb"  # Docker's default set exactly
    assert lines[4] == "sysfs-readonly"
    assert lines[5] == "disk-denied"  # mknod allowed, the device cgroup denies access


def test_named_non_root_user_from_the_image(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    script = "id; echo $HOME; touch /root/x 2>/dev/null && echo wrote || echo denied; grep CapEff /proc/self/status"
    result, out = run(
        rt,
        tmp_path,
        busybox_rootfs,
        ["sh", "-c", script],
        annotations={"org.orchestrator.user": "app"},
        process__cwd="/home/app",
    )
    assert result["exit_code"] == 0
    lines = out.split("\n")
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"
    assert lines[1] == "/home/app"
    assert lines[2] == "denied"
    assert lines[3].split()[1] == "0000000000000000"  # a non-root user has no effective caps


def test_numeric_user_and_group(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    result, out = run(
        rt, tmp_path, busybox_rootfs, ["id"], annotations={"org.orchestrator.user": "4242:nogroup"}
    )
    assert result["exit_code"] == 0
    assert out.strip() == "uid=4242 gid=65534(nogroup) groups=65534(nogroup)"


def test_unknown_user_is_a_clear_error(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    from runtime.errors import SetupError

    b = bundle(
        tmp_path / "b", ["id"], lower=busybox_rootfs, annotations={"org.orchestrator.user": "ghost"}
    )
    with pytest.raises(SetupError, match="unable to find user ghost"):
        rt.run("ghost", b)
    assert not (state_root / "runtime" / "ghost").exists()


def test_rlimits_and_no_new_privileges(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    result, out = run(
        rt,
        tmp_path,
        busybox_rootfs,
        ["sh", "-c", "ulimit -n; grep NoNewPrivs /proc/self/status"],
        process__rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}],
        process__noNewPrivileges=True,
    )
    assert result["exit_code"] == 0
    lines = out.split("\n")
    assert lines[0] == "512"
    assert lines[1].split() == ["NoNewPrivs:", "1"]


def test_raising_a_hard_limit_says_why_it_cannot(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    from runtime.errors import SetupError

    b = bundle(
        tmp_path / "b",
        ["true"],
        lower=busybox_rootfs,
        process__rlimits=[{"type": "RLIMIT_NOFILE", "soft": 2**30, "hard": 2**30}],
    )
    with pytest.raises(SetupError, match="CAP_SYS_RESOURCE"):
        rt.run("lim", b)


def test_usage_stats(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30"],
        lower=busybox_rootfs,
    )
    rt.run("busy", b)
    time.sleep(0.5)
    stats = rt.stats("busy")
    assert stats.memory_usage and stats.memory_usage > 0
    assert stats.cpu_usage_ns and stats.cpu_usage_ns > 0
    assert stats.pids_current and stats.pids_current >= 1
    rt.delete("busy", force=True)
