"""``version``, ``info`` and ``system df`` against a real state root."""

from __future__ import annotations

import json
import os
import platform

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root


def test_version(orc: Orc) -> None:
    from orchestrator import __version__

    text = orc("version").stdout
    assert "Client:" in text and "Server:" in text and __version__ in text
    assert platform.release() in text and "Cgroup Version:" in text
    facts = json.loads(orc("version", "--format", "json").stdout)
    assert facts["Client"]["Python"] == platform.python_version()
    assert facts["Server"]["CgroupVersion"] in ("1", "2")
    assert (
        orc("version", "--format", "{{.Server.KernelVersion}}").stdout == platform.release() + "\n"
    )


def test_info_counts_containers_by_state(orc: Orc, state_root: object) -> None:
    orc("run", "-d", "--name", "up", "busybox", "sleep", "300")
    orc("run", "-d", "--name", "frozen", "busybox", "sleep", "300")
    orc("pause", "frozen")
    orc("create", "--name", "made", "busybox", "true")
    facts = json.loads(orc("info", "--format", "json").stdout)
    assert (facts["Containers"], facts["ContainersRunning"], facts["ContainersPaused"]) == (3, 1, 1)
    assert facts["ContainersStopped"] == 1 and facts["Images"] == 1
    assert facts["StorageDriver"] == "overlay" and facts["DockerRootDir"] == str(state_root)
    assert facts["NCPU"] == os.cpu_count() and facts["MemTotal"] > 0
    text = orc("info").stdout
    assert "Running: 1" in text and "Paused: 1" in text and "Operating System:" in text
    orc("unpause", "frozen")


def test_system_df(orc: Orc) -> None:
    orc(
        "run",
        "--name",
        "writer",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 200000 /dev/zero > /layer; head -c 50000 /dev/zero > /data/v",
    )
    orc("run", "-d", "--name", "alive", "busybox", "sleep", "300")
    lines = {
        row["Type"]: row
        for row in map(json.loads, orc("system", "df", "--format", "json").stdout.splitlines())
    }
    images, containers, volumes = lines["Images"], lines["Containers"], lines["Local Volumes"]
    assert images["TotalCount"] == 1 and images["Active"] == 1 and images["Size"] > 1_000_000
    assert images["Reclaimable"] == 0  # its image is in use
    assert containers["TotalCount"] == 2 and containers["Active"] == 1
    assert containers["Size"] >= 200_000 and containers["Reclaimable"] >= 200_000
    assert volumes["TotalCount"] == 1 and volumes["Size"] == 50_000
    assert lines["Build Cache"]["TotalCount"] == 0
    table = orc("system", "df").stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split()[0] for line in table[1:]] == ["Images", "Containers", "Local", "Build"]
    verbose = orc("system", "df", "-v").stdout
    assert "writer" in verbose and "alive" in verbose and "data" in verbose
