"""Pre-made containers mount /proc, /dev and /sys ahead of the request (runtime.premount): what
the container sees must not differ from a container set up the ordinary way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.api import Runtime
from runtime.forkserver import stop
from runtime.spec import DEFAULT_MASKED_PATHS
from tests.busybox import bundle
from tests.integration.runtime.conftest import PooledRuntime

pytestmark = pytest.mark.root

SHOW = (
    "cat /proc/self/mountinfo; echo ---; ls -ln /dev /dev/pts | sed 's/ [A-Z][a-z][a-z] .* / /'; "
    "echo ---; head -c 1 /proc/timer_list | wc -c; df -k /dev/shm | tail -1"
)


def _mounts(mountinfo: str) -> list[tuple[str, ...]]:
    """Mount point, options, type, source and super options: all but the ids and device."""
    rows = []
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[4] == "/":  # the overlay names each bundle's own directories
            fields = fields[: sep + 2]
        rows.append((fields[4], fields[5], *fields[sep + 1 :]))
    return sorted(rows)


def _seen(rt: Runtime, tmp_path: Path, rootfs: Path, name: str, **changes: Any) -> list[Any]:
    b = bundle(tmp_path / name, ["sh", "-c", SHOW], lower=rootfs, **changes)
    log = tmp_path / f"{name}.log"
    rt.run(name, b, log_path=str(log))
    assert rt.wait(name, timeout=10)["exit_code"] == 0
    rt.delete(name)
    out = "".join(json.loads(line)["log"] for line in log.read_text().splitlines())
    mountinfo, devices, rest = out.split("---\n")
    return [_mounts(mountinfo), devices, rest, _premounted(mountinfo)]


def _premounted(mountinfo: str) -> set[str]:
    """The trees mounted before the root: made ahead, and moved in."""
    ids = {line.split()[4]: int(line.split()[0]) for line in mountinfo.splitlines()}
    return {tree for tree in ("/proc", "/dev", "/sys") if ids[tree] < ids["/"]}


ALL = {"/proc", "/dev", "/sys"}


@pytest.mark.parametrize(
    ("changes", "expected_premounted"),
    [
        ({}, ALL),
        # a /dev/shm of another size: the /dev tree is mounted the ordinary way
        ({"mounts": "shm-128m"}, {"/proc", "/sys"}),
        # no masks at all (as --privileged has it): /proc and /sys the ordinary way
        ({"linux__maskedPaths": [], "linux__readonlyPaths": []}, {"/dev"}),
        # more masks than the default: the extra ones come after the move
        (
            {"linux__maskedPaths": [*DEFAULT_MASKED_PATHS, "/etc/hostname", "/proc/cpuinfo"]},
            ALL,
        ),
    ],
    ids=["default", "other-shm", "no-masks", "extra-masks"],
)
@pytest.mark.cgroup_v1
def test_pooled_containers_see_what_ordinary_ones_see(
    state_root: Path,
    tmp_path: Path,
    busybox_rootfs: Path,
    changes: dict[str, Any],
    expected_premounted: set[str],
) -> None:
    if changes.get("mounts") == "shm-128m":
        from runtime.specgen import default_mounts

        changes = {"mounts": default_mounts(shm_size=128 * 1024 * 1024)}
    root = state_root / "runtime"
    direct = _seen(Runtime(root), tmp_path, busybox_rootfs, "direct", **changes)
    pooled_rt = PooledRuntime(root, fork_server=True)
    try:
        pooled = _seen(pooled_rt, tmp_path, busybox_rootfs, "pooled", **changes)
    finally:
        stop(root)
    assert pooled[:3] == direct[:3]
    assert direct[3] == set()
    assert pooled[3] == expected_premounted
    mounts, _, rest, _ = pooled
    points = {row[0] for row in mounts}
    assert {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"} <= points
    assert "/sys/fs/cgroup/memory" in points
    timer_list_bytes = rest.split()[0]
    assert timer_list_bytes == ("1" if changes.get("linux__maskedPaths") == [] else "0")
    if changes.get("linux__maskedPaths"):
        assert ("/proc/cpuinfo",) in {row[:1] for row in mounts}  # the extra masks hold too
    shm_kib = int(rest.split()[2])
    assert shm_kib == (131072 if "mounts" in changes else 65536)
