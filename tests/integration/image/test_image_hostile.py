"""A corpus of hostile layers: each is imported, then checked against canaries outside the store.

Whatever the outcome, nothing outside the store changes; a refused import leaves the store as it
was (no blob, no layer, no temp file, no state change).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.image import ImageStore, InvalidImage, Limits
from tests.image_fixtures import (
    Canary,
    Member,
    chardev,
    directory,
    file,
    hardlink,
    pad,
    pax_header,
    raw_header,
    raw_tar,
    symlink,
    tar_bytes,
)

pytestmark = pytest.mark.root


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    return Canary.make(tmp_path / "canary")


def store_files(store: ImageStore) -> dict[str, list[str]]:
    return {
        name: sorted(os.listdir(store.root / name)) if (store.root / name).exists() else []
        for name in ("l", "tmp", "blobs/sha256")
    }


def refused(store: ImageStore, tmp_path: Path, data: bytes, match: str) -> None:
    store.import_rootfs_tar(_write(tmp_path, b"tar", tar_bytes([file("ok", b"ok")])), "ok:1")
    before = store_files(store)
    state = (store.root / "state.json").read_bytes()
    with pytest.raises(InvalidImage, match=match):
        store.import_rootfs_tar(_write(tmp_path, b"evil", data), "evil")
    assert store_files(store) == before
    assert (store.root / "state.json").read_bytes() == state


def _write(tmp_path: Path, name: bytes, data: bytes) -> Path:
    path = tmp_path / (name.decode() + ".tar")
    path.write_bytes(data)
    return path


def C(canary: Canary, rel: str = "") -> str:
    return str(canary.root / rel) if rel else str(canary.root)


HOSTILE: dict[str, tuple[Callable[[Canary], bytes], str]] = {
    "dotdot": (
        lambda c: tar_bytes([file("../../../../../../" + C(c, "evil"), b"x")]),
        "leaves the layer",
    ),
    "dotdot-inside": (lambda c: tar_bytes([file("a/../../evil", b"x")]), "leaves the layer"),
    "pax-path-dotdot": (
        lambda c: raw_tar(
            [pax_header({b"path": b"../evil"}), raw_header(b"innocent", size=1) + pad(b"x")]
        ),
        "leaves the layer",
    ),
    "gnu-longname-dotdot": (
        lambda c: raw_tar(
            [
                raw_header(b"././@LongLink", b"L", 30) + pad(b"x/" * 5 + b"../" * 6 + b"ev\0"),
                raw_header(b"n"),
            ]
        ),
        "leaves the layer",
    ),
    "symlinked-parent-absolute": (
        lambda c: tar_bytes([symlink("d", C(c)), file("d/evil", b"x")]),
        "goes through a symlink",
    ),
    "symlinked-parent-relative": (
        lambda c: tar_bytes([symlink("d", "../" * 20 + C(c)[1:]), file("d/evil", b"x")]),
        "goes through a symlink",
    ),
    "dir-replaced-by-symlink": (
        lambda c: tar_bytes([directory("d"), symlink("d", C(c)), file("d/secret", b"pwned")]),
        "goes through a symlink",
    ),
    "hardlink-outside-dotdot": (
        lambda c: tar_bytes([hardlink("h", "../../../../../../" + C(c, "secret"))]),
        "leaves the layer",
    ),
    "hardlink-outside-absolute": (
        lambda c: tar_bytes([hardlink("h", C(c, "secret"))]),
        "not an earlier entry",
    ),
    "hardlink-through-symlinked-parent": (
        lambda c: tar_bytes([symlink("p", C(c)), hardlink("h", "p/secret")]),
        "goes through a symlink",
    ),
    "device-node": (lambda c: tar_bytes([chardev("dev/mem", 1, 1)]), "device node"),
    "block-device": (
        lambda c: tar_bytes([Member("sda", b"4", devmajor=8, devminor=0)]),
        "device node",
    ),
    "whiteout-empty-name": (lambda c: tar_bytes([file("etc/.wh.")]), "malformed whiteout"),
    "whiteout-unknown-meta": (lambda c: tar_bytes([file(".wh..wh.evil")]), "malformed whiteout"),
    "whiteout-directory": (lambda c: tar_bytes([directory(".wh.etc")]), "malformed whiteout"),
    "whiteout-symlink": (lambda c: tar_bytes([symlink(".wh.etc", C(c))]), "malformed whiteout"),
    "whiteout-parent": (lambda c: tar_bytes([file(".wh.etc/passwd")]), "malformed whiteout"),
    "whiteout-dotdot": (lambda c: tar_bytes([file("a/.wh...")]), "malformed whiteout|leaves"),
    "opaque-as-directory": (
        lambda c: tar_bytes([directory("a/.wh..wh..opq")]),
        "malformed whiteout",
    ),
    "nul-in-pax-path": (
        lambda c: raw_tar([pax_header({b"path": b"a\0b"}), raw_header(b"x")]),
        "NUL",
    ),
    "junk-after-archive": (lambda c: tar_bytes([file("a")]) + b"\0" * 512 + b"junk" * 128, "junk"),
    "junk-after-gzip": (lambda c: gzip.compress(tar_bytes([file("a")])) + b"trailing", "junk"),
    "truncated": (lambda c: tar_bytes([file("a", b"x" * 4096)])[:2048], "ends in the middle"),
    "not-a-tar": (lambda c: b"hello world, this is not a tar archive" * 20, "checksum"),
    "root-replaced": (lambda c: tar_bytes([symlink(".", C(c))]), "layer root"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused_and_contained(
    case: str, store: ImageStore, canary: Canary, tmp_path: Path
) -> None:
    make, match = HOSTILE[case]
    refused(store, tmp_path, make(canary), match)
    canary.check()


def test_absolute_names_stay_inside(store: ImageStore, canary: Canary, tmp_path: Path) -> None:
    data = tar_bytes([file(C(canary, "secret"), b"overwritten?"), file(C(canary, "new"), b"n")])
    image = store.import_rootfs_tar(_write(tmp_path, b"abs", data), "abs")
    [layer] = store.layer_dirs(image)
    assert (layer / C(canary, "secret")[1:]).read_bytes() == b"overwritten?"
    canary.check()


def test_hardlink_to_symlink_then_chmod(store: ImageStore, canary: Canary, tmp_path: Path) -> None:
    """tarfile's old bug: chmod applied through a hard link to a symlink reached the target."""
    data = tar_bytes(
        [
            symlink("s", C(canary, "secret")),
            hardlink("h", "s", mode=0o777),
            Member("h", b"1", mode=0o4777, linkname="s"),
        ]
    )
    image = store.import_rootfs_tar(_write(tmp_path, b"hl", data), "hl")
    [layer] = store.layer_dirs(image)
    assert os.readlink(layer / "h") == C(canary, "secret")
    canary.check()


def test_symlink_then_file_overwrites_the_link_not_its_target(
    store: ImageStore, canary: Canary, tmp_path: Path
) -> None:
    data = tar_bytes([symlink("f", C(canary, "secret")), file("f", b"mine", 0o4755)])
    image = store.import_rootfs_tar(_write(tmp_path, b"sf", data), "sf")
    [layer] = store.layer_dirs(image)
    assert (layer / "f").read_bytes() == b"mine" and not (layer / "f").is_symlink()
    canary.check()


def test_symlink_chain_is_never_followed(store: ImageStore, canary: Canary, tmp_path: Path) -> None:
    data = tar_bytes([symlink("a", "b"), symlink("b", C(canary)), file("a/x", b"x")])
    refused(store, tmp_path, data, "symlink")
    canary.check()


def test_gzip_bomb(state_root: Path, canary: Canary, tmp_path: Path) -> None:
    store = ImageStore(state_root / "images", limits=Limits(max_ratio=50, ratio_grace=1 << 20))
    bomb = gzip.compress(tar_bytes([file("zeros", b"\0" * (32 << 20))]), 9)
    refused(store, tmp_path, bomb, "decompression bomb")
    canary.check()


def test_too_many_entries(state_root: Path, tmp_path: Path) -> None:
    store = ImageStore(state_root / "images", limits=Limits(max_entries=1000))
    data = gzip.compress(tar_bytes([directory("d")] * 1500))
    refused(store, tmp_path, data, "more than 1000 entries")


def test_uncompressed_size_limit(state_root: Path, tmp_path: Path) -> None:
    store = ImageStore(state_root / "images", limits=Limits(max_bytes=4 << 20))
    data = gzip.compress(tar_bytes([file(f"f{i}", b"\1" * (1 << 20)) for i in range(8)]))
    refused(store, tmp_path, data, "expands beyond|larger than")


def test_trusted_overlay_xattrs_are_dropped(store: ImageStore, tmp_path: Path) -> None:
    data = tar_bytes(
        [
            Member(
                "etc",
                b"5",
                mode=0o755,
                pax={"SCHILY.xattr.trusted.overlay.redirect": "/root", "SCHILY.xattr.user.x": "1"},
            )
        ]
    )
    image = store.import_rootfs_tar(_write(tmp_path, b"x", data), "x")
    [layer] = store.layer_dirs(image)
    assert os.listxattr(layer / "etc") == ["user.x"]
