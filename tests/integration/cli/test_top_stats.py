"""Single containers' top and stats (Docker's), against the real kernel (cgroup v1 here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root

LOOP = ["sh", "-c", "while :; do sleep 0.1; done"]


def _pid(orc: Orc, name: str) -> int:
    return int(json.loads(orc("inspect", name).stdout)[0]["state"]["pid"])


def _stats(orc: Orc, *names: str) -> dict[str, dict[str, Any]]:
    out = orc("stats", "--no-stream", "--format", "json", *names).stdout
    return {row["Name"]: row for row in map(json.loads, out.splitlines())}


def test_top_lists_the_containers_processes_with_host_pids(orc: Orc) -> None:
    orc("run", "-d", "--name", "top1", "busybox", *LOOP)
    init = _pid(orc, "top1")
    lines = orc("top", "top1").stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    by_pid = {int(line.split()[1]): line.split() for line in lines[1:]}
    assert by_pid[init][0] == "root"
    assert " ".join(by_pid[init][7:]) == "sh -c while :; do sleep 0.1; done"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", by_pid[init][6])
    # its children are there, with it as parent (host pids throughout)
    assert all(row[2] == str(init) for pid, row in by_pid.items() if pid != init)
    # with ps options: the host's ps, only the container's rows
    custom = orc("top", "top1", "-o", "pid,comm").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert [line.split()[1] for line in custom[1:] if int(line.split()[0]) == init] == ["sh"]
    assert all(int(line.split()[0]) in by_pid or "sleep" in line for line in custom[1:])


def test_top_of_a_stopped_container_or_bad_ps_options_is_one_line(orc: Orc) -> None:
    orc("create", "--name", "idle", "busybox", "true")
    done = orc("top", "idle", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "orchestrator: container idle is not running"
    orc("run", "-d", "--name", "top1", "busybox", *LOOP)
    done = orc("top", "top1", "-o", "comm", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "orchestrator: ps options must keep the PID column"
    done = orc("top", "nope", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_stats_memory_limit_pids_and_cpu(orc: Orc) -> None:
    orc("run", "-d", "--name", "limited", "-m", "64m", "busybox", *LOOP)
    orc(
        "run", "-d", "--name", "busy", "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done"
    )
    stats = _stats(orc)  # every running container
    assert set(stats) == {"limited", "busy"}
    limited = stats["limited"]
    assert limited["memory_limit"] == 64 << 20
    assert limited["MemUsage"].endswith(" / 64MiB")
    assert 0 < limited["memory_usage"] < 64 << 20
    assert limited["pids"] >= 1 and limited["PIDs"] == str(limited["pids"])
    # 0.5 CPU of quota: busy near it, never far above it
    assert 20 < stats["busy"]["cpu_percent"] < 70, stats["busy"]
    assert stats["busy"]["memory_limit"] > 64 << 20  # none: the host's memory
    table = orc("stats", "--no-stream", "limited").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert table[1].split()[1] == "limited"
    full = orc("stats", "--no-stream", "--no-trunc", "limited").stdout.splitlines()[1].split()[0]
    assert len(full) == 64


def test_stats_counts_network_io_and_shows_stopped_ones_with_all(orc: Orc) -> None:
    orc("network", "create", "statsnet")
    orc("run", "-d", "--name", "srv", "--network", "statsnet", "busybox", "httpd", "-f", "-p", "80")
    orc(
        "run", "--rm", "--network", "statsnet", "busybox",
        "sh", "-c", "wget -qO- http://srv/ 2>/dev/null; true",
    )  # fmt: skip
    srv = _stats(orc, "srv")["srv"]
    assert srv["net_rx"] > 0 and srv["net_tx"] > 0
    assert re.fullmatch(r"\d[\d.]*[kMG]?B / \d[\d.]*[kMG]?B", srv["NetIO"])
    orc("create", "--name", "idle", "busybox", "true")
    assert "idle" not in _stats(orc)
    every = orc("stats", "--no-stream", "-a", "--format", "json").stdout.splitlines()
    idle = next(json.loads(line) for line in every if json.loads(line)["Name"] == "idle")
    assert idle["running"] is False and idle["pids"] == 0


def test_cgroup_usage_is_read_from_the_v1_hierarchy(orc: Orc, state_root: Path) -> None:
    """runtime.cgroups.stats on this machine's real (v1) cgroups."""
    from runtime.api import Runtime
    from runtime.cgroups import open_manager
    from runtime.cgroups.stats import read_usage

    orc("run", "-d", "--name", "use1", "-m", "32m", "--pids-limit", "50", "busybox", *LOOP)
    record = json.loads(orc("inspect", "use1").stdout)[0]
    runtime = Runtime(state_root / "runtime")
    state = runtime.state(record["id"]).record
    manager = open_manager(
        str(state.get("cgroup") or record["id"]), parent=str(state.get("cgroup_parent"))
    )
    usage = read_usage(manager)
    assert manager.version == 1
    assert usage.memory_limit == 32 << 20 and usage.pids_limit == 50
    assert usage.memory is not None and 0 < usage.memory < 32 << 20
    assert usage.pids is not None and usage.pids >= 1
    assert usage.cpu_ns is not None and usage.cpu_ns > 0
    assert usage.block_read is not None and usage.block_write is not None
