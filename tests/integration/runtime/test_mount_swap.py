"""Bind mounts at start while another container swaps the path under them (a shared volume).

Container A, sharing a folder with B, keeps turning ``/v/d`` from a folder into a symlink to a
host folder and back. B is started again and again with a read-only bind mount at
``/v/d/m``. Whatever the timing, the mount lands inside B's root (or B refuses to start with
an error), the host folder the symlink names stays empty, nothing is mounted on the host, and
B's mount is read-only wherever it landed (its flags are set before it is attached, so no
second lookup of the path can miss it: runtime.bindmount).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import Error
from tests.busybox import bundle

pytestmark = pytest.mark.root


def _bind(source: Path, destination: str, *options: str) -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": str(source),
        "options": ["rbind", *options],
    }


def _host_mounts(under: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(under))]


def test_a_path_swapped_to_a_symlink_never_sends_a_mount_out(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    shared = tmp_path / "shared"
    (shared / "d").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    readonly = tmp_path / "ro-source"
    readonly.mkdir()
    swap = f"while :; do mv /v/d /v/x; ln -s {victim} /v/d; rm /v/d; mv /v/x /v/d; done"
    a = bundle(tmp_path / "a", ["sh", "-c", swap], lower=busybox_rootfs)
    spec = json.loads((a / "config.json").read_text())
    spec["mounts"].append(_bind(shared, "/v"))
    (a / "config.json").write_text(json.dumps(spec))
    rt.run("swapper", a)
    try:
        started = 0
        for i in range(8):
            time.sleep(0.005 * i)  # a different moment in the swap each time
            b = bundle(tmp_path / f"b{i}", ["cat", "/proc/self/mountinfo"], lower=busybox_rootfs)
            spec = json.loads((b / "config.json").read_text())
            spec["mounts"] += [_bind(shared, "/v"), _bind(readonly, "/v/d/m", "ro")]
            (b / "config.json").write_text(json.dumps(spec))
            log = tmp_path / f"b{i}.log"
            try:
                rt.run(f"b{i}", b, log_path=str(log))
            except Error as exc:
                assert "/v/d" in str(exc)  # the path was a dangling symlink inside B's root
            else:
                started += 1
                assert rt.wait(f"b{i}", timeout=10)["exit_code"] == 0
                lines = [json.loads(line)["log"] for line in log.read_text().splitlines()]
                ours = [line.split() for line in lines if line.split()[3] == str(readonly)]
                assert ours and all(fields[5].split(",")[0] == "ro" for fields in ours)
            if _exists(rt, f"b{i}"):
                rt.delete(f"b{i}", force=True)
            assert list(victim.iterdir()) == []
            assert _host_mounts(tmp_path) == []
        print(f"{started} of 8 started")
        assert started > 0
    finally:
        rt.delete("swapper", force=True)


def _exists(rt: Any, name: str) -> bool:
    from runtime.errors import NotFound

    try:
        rt.state(name)
    except NotFound:
        return False
    return True
