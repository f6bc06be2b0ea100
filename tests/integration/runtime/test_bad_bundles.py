"""Bad bundles and hostile images: one clear error, nothing left behind, the host untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import BundleError, SetupError
from tests.busybox import bundle
from tests.conftest import current_cgroup_parent

pytestmark = pytest.mark.root


def assert_nothing_left(state_root: Path, name: str) -> None:
    assert not (state_root / "runtime" / name).exists()
    assert not any(
        Path(f"/sys/fs/cgroup/{c}/{current_cgroup_parent()}/{name}").exists()
        for c in os.listdir("/sys/fs/cgroup")
    )


def test_missing_rootfs(rt: Any, tmp_path: Path, state_root: Path) -> None:
    b = tmp_path / "b"
    b.mkdir()
    from runtime.specgen import default_spec

    (b / "config.json").write_text(json.dumps(default_spec(["true"])))
    with pytest.raises(BundleError, match=r"root\.path: .*/b/rootfs is not a directory"):
        rt.run("x", b)
    assert_nothing_left(state_root, "x")


def test_malformed_config(rt: Any, tmp_path: Path, state_root: Path) -> None:
    b = tmp_path / "b"
    (b / "rootfs").mkdir(parents=True)
    (b / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')
    with pytest.raises(BundleError, match="config\\.json: not valid JSON"):
        rt.run("x", b)
    (b / "config.json").write_text(
        json.dumps(
            {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": [], "cwd": "/"}}
        )
    )
    with pytest.raises(BundleError, match=r"process\.args: must be a non-empty list"):
        rt.run("x", b)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"no config\.json in bundle"):
        rt.run("x", tmp_path / "empty")
    assert_nothing_left(state_root, "x")


def test_unknown_capability(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    caps = {"bounding": ["CAP_CHOWN", "CAP_WIZARDRY"], "effective": [], "permitted": []}
    b = bundle(tmp_path / "b", ["true"], lower=busybox_rootfs, process__capabilities=caps)
    with pytest.raises(
        BundleError, match=r"process\.capabilities\.bounding: unknown capability 'CAP_WIZARDRY'"
    ):
        rt.run("x", b)
    assert_nothing_left(state_root, "x")


def test_missing_cwd(rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path) -> None:
    b = bundle(tmp_path / "b", ["true"], lower=busybox_rootfs, process__cwd="/does/not/exist")
    with pytest.raises(SetupError, match=r"process\.cwd /does/not/exist: no such directory"):
        rt.run("x", b)
    assert_nothing_left(state_root, "x")


@pytest.mark.parametrize("cwd", ["/proc/self/fd/3", "/proc/1/cwd", "/proc/self/root/../../etc"])
def test_cwd_through_proc_magic_links(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path, cwd: str
) -> None:
    # runc's CVE-2024-21626: a cwd through a leaked fd reached the host's filesystem
    b = bundle(tmp_path / "b", ["true"], lower=busybox_rootfs, process__cwd=cwd)
    with pytest.raises(SetupError, match=r"process\.cwd"):
        rt.run("x", b)
    assert_nothing_left(state_root, "x")


def test_executable_not_found(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    b = bundle(tmp_path / "b", ["no-such-program"], lower=busybox_rootfs)
    with pytest.raises(
        SetupError, match="exec no-such-program: executable file not found in \\$PATH"
    ):
        rt.run("x", b)
    assert_nothing_left(state_root, "x")


def hostile_rootfs(tmp_path: Path, base: Path, links: dict[str, str]) -> Path:
    """An image layer over busybox whose paths are symlinks pointing at host locations."""
    layer = tmp_path / "hostile"
    layer.mkdir()
    for path, target in links.items():
        full = layer / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.symlink_to(target)
    return layer


@pytest.mark.parametrize(
    "links",
    [
        {"etc/hosts": "CANARY"},
        {"etc": "CANARY_DIR"},
        {"proc": "CANARY_DIR"},
        {"dev": "CANARY_DIR"},
        {"etc/hostname": "../../../../../../CANARY"},
    ],
)
def test_symlinks_in_the_image_cannot_reach_the_host(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path, links: dict[str, str]
) -> None:
    canary_dir = tmp_path / "canary-dir"
    canary_dir.mkdir()
    canary = tmp_path / "canary"
    canary.write_text("untouched\n")
    resolved = {
        k: v.replace("CANARY_DIR", str(canary_dir)).replace("CANARY", str(canary))
        for k, v in links.items()
    }
    layer = hostile_rootfs(tmp_path, busybox_rootfs, resolved)
    b = tmp_path / "b"
    for sub in ("upper", "work", "rootfs"):
        (b / sub).mkdir(parents=True)
    from runtime.spec import ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR, ANNOTATION_WORKDIR
    from runtime.specgen import default_spec

    spec = default_spec(["true"], hostname="box")
    hosts = tmp_path / "hosts-file"
    hosts.write_text("127.0.0.1 localhost\n")
    spec["mounts"] += [
        {"destination": "/etc/hosts", "type": "bind", "source": str(hosts), "options": ["rbind"]},
        {
            "destination": "/etc/hostname",
            "type": "bind",
            "source": str(hosts),
            "options": ["rbind"],
        },
    ]
    spec["annotations"] = {
        ANNOTATION_LOWERDIRS: json.dumps([str(busybox_rootfs), str(layer)]),
        ANNOTATION_UPPERDIR: str(b / "upper"),
        ANNOTATION_WORKDIR: str(b / "work"),
    }
    (b / "config.json").write_text(json.dumps(spec))
    try:
        rt.run("x", b)
        rt.wait("x", timeout=20)
        rt.delete("x")
    except SetupError:
        pass  # refusing is fine too; touching the host is not
    assert canary.read_text() == "untouched\n"
    assert os.listdir(canary_dir) == []
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    assert_nothing_left(state_root, "x")
