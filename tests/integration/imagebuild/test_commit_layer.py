"""The upper-directory-to-layer conversion (``ImageStore.commit_diff``): whiteouts, opaque
directories, hard links and xattrs survive a round trip, and the same content gives the same
digest."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from orchestrator.imagebuild.trees import LayerTree
from runtime.image import ImageStore
from runtime.image.difftar import write_diff_tar
from runtime.image.tarstream import Limits, Source, TarReader

pytestmark = pytest.mark.root


def _upper(path: Path) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "config").write_text("changed\n")
    os.setxattr(path / "etc" / "config", "user.origin", b"test")
    os.mknod(path / "etc" / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (path / "opaque" / "inner").mkdir(parents=True)
    os.setxattr(path / "opaque", "trusted.overlay.opaque", b"y")
    (path / "opaque" / "inner" / "f").write_text("f")
    (path / "a.txt").write_text("a")
    os.link(path / "a.txt", path / "b.txt")
    (path / "link").symlink_to("/etc/config")
    os.mkfifo(path / "pipe")
    return path


def _entries(data: bytes) -> list[tuple[str, bytes, int]]:
    src = Source(io.BytesIO(data), Limits())
    out = []
    for entry in TarReader(src, Limits()):
        out.append((entry.name.decode(), entry.type, entry.size))
        src.skip(entry.size)
    return out


def test_whiteouts_and_opaque_dirs_become_tar_markers(tmp_path: Path) -> None:
    upper = _upper(tmp_path / "upper")
    buf = io.BytesIO()
    assert write_diff_tar(upper, buf) == 11
    names = [(n, t) for n, t, _ in _entries(buf.getvalue())]
    assert names == [
        ("a.txt", b"0"),
        ("b.txt", b"1"),
        ("etc/", b"5"),
        ("etc/config", b"0"),
        ("etc/.wh.gone", b"0"),  # in the place of "gone": sorted by the name in the upper dir
        ("link", b"2"),
        ("opaque/", b"5"),
        ("opaque/.wh..wh..opq", b"0"),
        ("opaque/inner/", b"5"),
        ("opaque/inner/f", b"0"),
        ("pipe", b"6"),
    ]
    again = io.BytesIO()
    write_diff_tar(upper, again)
    assert again.getvalue() == buf.getvalue()  # sorted, so byte for byte the same


def test_round_trip_through_the_store_is_deterministic(tmp_path: Path, state_root: Path) -> None:
    store = ImageStore(state_root / "images")
    upper = _upper(tmp_path / "upper")
    first = store.commit_diff(upper)
    second = store.commit_diff(upper)
    assert first is not None and second is not None
    assert first.diff_id == second.diff_id and first.blob == second.blob
    layer = store.layers_root / store._read_state()["layers"][first.diff_id]["dir"]
    gone = os.lstat(layer / "etc" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(layer / "opaque", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(layer / "etc" / "config", "user.origin") == b"test"
    assert os.stat(layer / "a.txt").st_ino == os.stat(layer / "b.txt").st_ino
    assert stat.S_ISFIFO(os.lstat(layer / "pipe").st_mode)
    # Over a lower layer, the merged view hides what the whiteout and the opaque dir hide.
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "gone").write_text("x")
    (lower / "etc" / "kept").write_text("x")
    (lower / "opaque").mkdir()
    (lower / "opaque" / "hidden").write_text("x")
    view = LayerTree([lower, layer])
    assert view.listdir("etc") == ["config", "kept"]
    assert view.listdir("opaque") == ["inner"]
    assert view.lstat("etc/gone") is None and view.lstat("opaque/hidden") is None


def test_empty_upper_is_no_layer(tmp_path: Path, state_root: Path) -> None:
    store = ImageStore(state_root / "images")
    (tmp_path / "empty").mkdir()
    assert store.commit_diff(tmp_path / "empty") is None


def test_device_nodes_are_refused(tmp_path: Path, state_root: Path) -> None:
    from runtime.image.model import InvalidImage

    store = ImageStore(state_root / "images")
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with pytest.raises(InvalidImage, match="device node"):
        store.commit_diff(upper)
    assert list((state_root / "images" / "tmp").iterdir()) == []
