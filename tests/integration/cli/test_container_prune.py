"""``orchestrator container prune``: every stopped (or never started) container goes, running
ones and stacks' stay; ``--filter until=``; the space given back."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root


def _names(orc: Orc) -> list[str]:
    return sorted(r["name"] for r in json.loads(orc("ps", "-a", "--format", "json").stdout))


def test_prune_removes_stopped_containers_and_reports_the_space(orc: Orc) -> None:
    orc("run", "--name", "done1", "busybox", "sh", "-c", "head -c 300000 /dev/zero > /big")
    orc("create", "--name", "made", "busybox", "true")
    orc("run", "-d", "--name", "alive", "busybox", "sleep", "300")
    # without -f it asks, and no answer is no
    done = orc("container", "prune")
    assert "Are you sure" in done.stderr and _names(orc) == ["alive", "done1", "made"]
    out = orc("container", "prune", "-f").stdout
    assert out.startswith("Deleted Containers:\n")
    assert len(re.findall(r"^[0-9a-f]{64}$", out, re.M)) == 2
    size = re.search(r"Total reclaimed space: ([0-9.]+)(kB|MB)", out)
    assert (
        size is not None and float(size.group(1)) * {"kB": 1e3, "MB": 1e6}[size.group(2)] >= 300000
    )
    assert _names(orc) == ["alive"]
    assert orc("container", "prune", "-f").stdout == "Total reclaimed space: 0B\n"


def test_until_and_label_filters(orc: Orc) -> None:
    orc("create", "--name", "older", "-l", "keep=no", "busybox", "true")
    time.sleep(1.2)
    orc("create", "--name", "newer", "-l", "keep=no", "busybox", "true")
    orc("container", "prune", "-f", "--filter", "until=1s")
    assert _names(orc) == ["newer"]
    orc("create", "--name", "other", "-l", "keep=yes", "busybox", "true")
    orc("container", "prune", "-f", "--filter", "label=keep=no")
    assert _names(orc) == ["other"]
    done = orc("container", "prune", "-f", "--filter", "until=soon", check=False)
    assert done.returncode == 1 and "--filter until=soon" in done.stderr
