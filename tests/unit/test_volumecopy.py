"""The first-use copy of an image's folder into a volume: the merged view of the layers
(whiteouts and opaque folders honoured), owners, modes and symlinks kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.volumecopy import fill, image_kind

pytestmark = pytest.mark.root  # (owners, whiteout device nodes, trusted.* attributes)


def _layers(tmp_path: Path) -> list[Path]:
    low, high = tmp_path / "low", tmp_path / "high"
    (low / "data" / "sub").mkdir(parents=True)
    (low / "data" / "opq").mkdir()
    (low / "data" / "opq" / "old").write_text("hidden by the opaque folder above")
    (low / "data" / "gone").write_text("whited out above")
    (low / "data" / "tool").write_text("#!/bin/sh\n")
    os.chown(low / "data" / "tool", 1000, 1000)
    os.chmod(low / "data" / "tool", 0o4750)
    (low / "data" / "link").symlink_to("tool")
    os.lchown(low / "data" / "link", 1000, 1000)
    (low / "etc").mkdir()
    (low / "etc" / "motd").write_text("a file")
    (low / "alias").symlink_to("/data")
    (high / "data" / "opq").mkdir(parents=True)
    os.setxattr(high / "data" / "opq", "trusted.overlay.opaque", b"y")
    (high / "data" / "opq" / "new").write_text("kept")
    os.mknod(high / "data" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (high / "data" / "sub" / "added").parent.mkdir(parents=True, exist_ok=True)
    (high / "data" / "sub" / "added").write_text("from the upper layer")
    os.chown(high / "data", 999, 998)  # the top layer's folder is the one overlay shows
    os.chmod(high / "data", 0o700)
    return [low, high]


def test_the_merged_view_is_copied_with_owners_and_modes(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    data = tmp_path / "volume"
    data.mkdir()
    assert fill(layers, "/alias", data)  # (through a symlink of the image, as a chroot would)
    assert sorted(os.listdir(data)) == ["link", "opq", "sub", "tool"]
    assert os.listdir(data / "opq") == ["new"]
    assert (data / "sub" / "added").read_text() == "from the upper layer"
    tool = os.stat(data / "tool")
    assert (tool.st_uid, tool.st_gid, stat.S_IMODE(tool.st_mode)) == (1000, 1000, 0o4750)
    assert os.readlink(data / "link") == "tool" and os.lstat(data / "link").st_uid == 1000
    root = os.stat(data)
    assert (root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode)) == (999, 998, 0o700)
    assert not fill(layers, "/data", data)  # filled once: not empty any more


def test_kinds_and_nothing_to_copy(tmp_path: Path) -> None:
    layers = _layers(tmp_path)
    assert image_kind(layers, "/data") == "dir"
    assert image_kind(layers, "/etc/motd") == "file"
    assert image_kind(layers, "/data/gone") is None
    assert image_kind(layers, "/nowhere") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not fill(layers, "/nowhere", empty)
    assert not fill(layers, "/etc/motd", empty)
    assert os.listdir(empty) == []
