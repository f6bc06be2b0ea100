"""The extractor on well-formed layers: what is kept, and the overlayfs whiteout format."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from runtime.image.extract import OPAQUE_XATTR, extract
from runtime.image.tarstream import Source
from tests.image_fixtures import Member, directory, fifo, file, hardlink, sha256, symlink, tar_bytes

pytestmark = pytest.mark.root


def unpack(tmp_path: Path, members: list[Member]) -> Path:
    dest = tmp_path / "layer"
    dest.mkdir()
    data = tar_bytes(members)
    stats = extract(Source(io.BytesIO(data)), dest)
    assert stats.digest == sha256(data)
    return dest


def is_whiteout(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_modes_owners_times_and_setuid_are_kept(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        [
            directory("usr/bin", 0o750, uid=5, gid=6),
            file("usr/bin/su", b"#!", 0o4755, uid=0, gid=0),
            file("usr/bin/wall", b"w", 0o2711, uid=7, gid=5),
            directory("tmp", 0o1777),
            file("ro", b"r", 0o444, mtime=1234567890),
        ],
    )
    assert stat.S_IMODE((root / "usr/bin/su").stat().st_mode) == 0o4755
    wall = (root / "usr/bin/wall").stat()
    assert (stat.S_IMODE(wall.st_mode), wall.st_uid, wall.st_gid) == (0o2711, 7, 5)
    ub = (root / "usr/bin").stat()
    assert (stat.S_IMODE(ub.st_mode), ub.st_uid, ub.st_gid) == (0o750, 5, 6)
    assert ub.st_mtime == 1_600_000_000  # set after its children were created
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert (root / "ro").stat().st_mtime == 1234567890
    assert stat.S_IMODE((root / "usr").stat().st_mode) == 0o755  # implicit parent


def test_symlinks_hardlinks_fifos_and_absolute_names(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        [
            file("/bin/busybox", b"elf", 0o755),
            symlink("bin/sh", "/bin/busybox"),
            hardlink("bin/ash", "/bin/busybox"),
            hardlink("./bin/hush", "bin/busybox"),
            fifo("run/fifo"),
        ],
    )
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert (root / "bin/ash").stat().st_ino == (root / "bin/busybox").stat().st_ino
    assert (root / "bin/busybox").stat().st_nlink == 3
    assert stat.S_ISFIFO((root / "run/fifo").lstat().st_mode)


def test_xattrs_are_kept_but_overlay_ones_dropped(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        [
            Member(
                "f",
                data=b"x",
                pax={
                    "SCHILY.xattr.user.note": "kept",
                    "SCHILY.xattr.trusted.overlay.opaque": "y",
                    "SCHILY.xattr.trusted.overlay.redirect": "/etc",
                },
            )
        ],
    )
    assert os.getxattr(root / "f", "user.note") == b"kept"
    assert not [x for x in os.listxattr(root / "f") if x.startswith("trusted.overlay.")]


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        [
            file("etc/.wh.passwd"),
            file("var/.wh..wh..opq"),
            file("var/new", b"n"),
            file(".wh.gone"),
        ],
    )
    assert is_whiteout(root / "etc/passwd")
    assert is_whiteout(root / "gone")
    assert os.getxattr(root / "var", OPAQUE_XATTR) == b"y"
    assert not list(root.rglob(".wh.*"))


def test_whiteout_and_directory_of_the_same_name(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        [
            file(".wh.a"),
            directory("a"),
            file("a/x"),
            directory("b"),
            file("b/y"),
            file(".wh.b"),
            file("c", b"file"),
            file(".wh.c"),
        ],
    )
    # Both directories must hide the lower layers' a and b: opaque.
    assert os.getxattr(root / "a", OPAQUE_XATTR) == b"y"
    assert os.getxattr(root / "b", OPAQUE_XATTR) == b"y"
    assert (root / "b/y").exists()
    assert (root / "c").read_bytes() == b"file"


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        [
            file("x", b"1"),
            file("x", b"2"),
            directory("d"),
            file("d/in"),
            file("d", b"now a file"),
            symlink("s", "x"),
            directory("s"),
        ],
    )
    assert (root / "x").read_bytes() == b"2"
    assert (root / "d").read_bytes() == b"now a file"
    assert (root / "s").is_dir() and not (root / "s").is_symlink()


def test_aufs_metadata_is_skipped(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        [directory(".wh..wh.plnk"), file(".wh..wh.plnk/123.456", b"x"), file("ok")],
    )
    assert sorted(p.name for p in root.iterdir()) == ["ok"]
