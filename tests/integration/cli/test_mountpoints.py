"""The shared mount-point layer (orchestrator.mountpoints): /etc/hosts, /etc/hostname and
/etc/resolv.conf come from one read-only layer per image, so that starting a container copies
nothing up into its writable layer; an image whose /etc is no directory does without it."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from orchestrator import mountpoints
from tests.cli import Orc

pytestmark = pytest.mark.root


def _container_dir(state_root: Path, name: str, orc: Orc) -> Path:
    full_id = orc("inspect", "-f", "{{.Id}}", name).stdout.strip()
    return state_root / "containers" / full_id


def _image_id(orc: Orc, image: str) -> str:
    return str(json.loads(orc("image", "inspect", image).stdout)[0]["Id"]).removeprefix("sha256:")


def test_mount_points_come_from_one_layer_per_image(orc: Orc, state_root: Path) -> None:
    for name in ("m1", "m2"):
        orc("run", "-d", "--name", name, "--hostname", f"host-{name}", "busybox", "sleep", "300")
    layer = state_root / "mountpoints" / _image_id(orc, "busybox")
    assert sorted(os.listdir(layer / "etc")) == ["hostname", "hosts", "resolv.conf"]
    assert len(os.listdir(layer.parent)) == 1  # shared by both
    for name in ("m1", "m2"):
        # nothing was copied up: the writable layer is as the container left it
        assert not (_container_dir(state_root, name, orc) / "upper" / "etc").exists()
        assert orc("exec", name, "cat", "/etc/hostname").stdout == f"host-{name}\n"
        assert f"host-{name}" in orc("exec", name, "cat", "/etc/hosts").stdout
        listing = orc("exec", name, "ls", "/etc").stdout.split()
        assert "passwd" in listing  # the image's own files are all there
    # a container's writes to /etc still land in its own layer
    orc("exec", "m1", "sh", "-c", "echo x > /etc/mine")
    assert (_container_dir(state_root, "m1", orc) / "upper" / "etc" / "mine").exists()
    assert orc("exec", "m2", "test", "-e", "/etc/mine", check=False).returncode != 0
    orc("rm", "-f", "m1", "m2")
    orc("rmi", "busybox")
    assert not layer.exists()  # gone with its image


def test_an_image_whose_etc_is_a_symlink_goes_without(
    orc: Orc, state_root: Path, busybox_tar: Path, tmp_path: Path
) -> None:
    linked = tmp_path / "linked.tar"
    with tarfile.open(busybox_tar) as source, tarfile.open(linked, "w") as target:
        for member in source.getmembers():
            stripped = member.name.removeprefix("./")
            if stripped == "etc" or stripped.startswith("etc/"):
                member.name = "usr/" + stripped
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        link = tarfile.TarInfo("etc")
        link.type, link.linkname = tarfile.SYMTYPE, "usr/etc"
        target.addfile(link)
    orc("image", "import", str(linked), "linked")
    orc("run", "-d", "--name", "l1", "--hostname", "linked-host", "linked", "sleep", "300")
    assert not (state_root / "mountpoints" / _image_id(orc, "linked")).exists()
    assert orc("exec", "l1", "cat", "/etc/hostname").stdout == "linked-host\n"
    assert orc("exec", "l1", "readlink", "/etc").stdout.strip() == "usr/etc"
    orc("rm", "-f", "l1")


def test_a_whiteout_of_etc_counts_as_none(tmp_path: Path) -> None:
    bottom, top = tmp_path / "bottom", tmp_path / "top"
    (bottom / "etc").mkdir(parents=True)
    top.mkdir()
    os.mknod(top / "etc", 0o600 | 0o020000, os.makedev(0, 0))  # overlay's whiteout
    assert mountpoints._image_etc([str(bottom), str(top)]) == (True, None)
    os.chmod(bottom / "etc", 0o750)
    usable, info = mountpoints._image_etc([str(bottom)])
    assert usable and info is not None and info.st_mode & 0o777 == 0o750
    layer = mountpoints.layer(tmp_path, "sha256:abc", [str(bottom)])
    assert layer is not None and os.stat(Path(layer) / "etc").st_mode & 0o777 == 0o750
