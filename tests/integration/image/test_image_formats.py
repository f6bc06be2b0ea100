"""docker save archives, OCI layouts (directory and tar), round trips with skopeo."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.image import ImageStore, InvalidImage, InvalidReference
from runtime.image.formats import detect
from tests.image_fixtures import (
    directory,
    docker_archive,
    file,
    oci_layout,
    sha256,
    symlink,
    tar_bytes,
)

pytestmark = pytest.mark.root
needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")

BASE = tar_bytes(
    [directory("etc"), file("etc/a", b"a"), file("etc/b", b"b"), directory("var"), file("var/x")]
)
TOP = tar_bytes([file("etc/.wh.a"), file("var/.wh..wh..opq"), file("var/y", b"y")])


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True).stdout


def nothing_left(store: ImageStore) -> None:
    for sub in ("l", "tmp", "blobs/sha256"):
        path = store.root / sub
        assert not path.exists() or os.listdir(path) == [], sub


def test_docker_archive(store: ImageStore, tmp_path: Path) -> None:
    path = docker_archive(tmp_path / "d.tar", [BASE, TOP], ["app:1", "other/app:2"], Cmd=["sh"])
    assert detect(path, store) == "docker-archive"
    image = store.import_path(path)
    assert image.repo_tags == ("docker.io/library/app:1", "docker.io/other/app:2")
    assert image.cmd == ["sh"]
    assert image.layers == (sha256(BASE), sha256(TOP))
    low, high = store.layer_dirs(image)
    assert (low / "etc/a").read_bytes() == b"a"
    assert (high / "etc/a").lstat().st_rdev == 0 and not (high / "etc/a").is_file()
    assert os.getxattr(high / "var", "trusted.overlay.opaque") == b"y"


def test_docker_archive_with_linked_layers_and_a_name(store: ImageStore, tmp_path: Path) -> None:
    cfg = json.dumps(
        {"os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(BASE), sha256(BASE)]}}
    ).encode()
    manifest = [{"Config": "c.json", "RepoTags": None, "Layers": ["a/layer.tar", "b/layer.tar"]}]
    members = [
        file("c.json", cfg),
        file("a/layer.tar", BASE),
        symlink("b/layer.tar", "../a/layer.tar"),
        file("manifest.json", json.dumps(manifest).encode()),
    ]
    path = tmp_path / "linked.tar"
    path.write_bytes(tar_bytes(members))
    image = store.import_path(path, "named:v")
    assert image.repo_tags == ("docker.io/library/named:v",)
    assert len(set(store.layer_dirs(image))) == 1


def test_gzipped_docker_archive(store: ImageStore, tmp_path: Path) -> None:
    path = docker_archive(tmp_path / "d.tar", [BASE], ["zipped:1"])
    gz = tmp_path / "d.tar.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert store.import_path(gz).repo_tags == ("docker.io/library/zipped:1",)
    assert os.listdir(store.tmp_root) == []


def test_oci_layout_directory_and_tar(store: ImageStore, tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "oci", [BASE, TOP], ref_name="example.com/app:3", User="nobody")
    image = store.import_path(layout)
    assert image.repo_tags == ("example.com/app:3",)
    assert image.user == "nobody"
    tar = tmp_path / "oci.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(tar), "."], check=True)
    assert detect(tar, store) == "oci-tar"
    again = store.import_path(tar, "fromtar:1")
    assert again.id == image.id
    assert len(os.listdir(store.layers_root)) == 2


def test_oci_layout_bare_tag_leaves_the_image_untagged(store: ImageStore, tmp_path: Path) -> None:
    image = store.import_path(oci_layout(tmp_path / "oci", [BASE], ref_name="latest"))
    assert image.repo_tags == ()


def test_tampered_oci_blob_is_refused(store: ImageStore, tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "oci", [BASE, TOP])
    blobs = sorted((layout / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    victim = next(p for p in blobs if p.read_bytes()[:2] == b"\x1f\x8b")
    victim.write_bytes(gzip.compress(tar_bytes([file("evil")])))
    with pytest.raises(InvalidImage, match=r"does not match|bytes, expected"):
        store.import_path(layout, "t:1")
    nothing_left(store)


def test_hostile_manifest_paths(store: ImageStore, tmp_path: Path) -> None:
    for config_path in ("../../../etc/passwd", "/etc/passwd", "a/../../x"):
        manifest: list[dict[str, object]] = [{"Config": config_path, "RepoTags": [], "Layers": []}]
        path = tmp_path / "bad.tar"
        path.write_bytes(tar_bytes([file("manifest.json", json.dumps(manifest).encode())]))
        with pytest.raises(InvalidImage, match=r"leaves the layer|no member"):
            store.import_path(path)
    layout = oci_layout(tmp_path / "oci", [BASE])
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(InvalidReference, match="invalid digest"):
        store.import_path(layout)
    nothing_left(store)


def test_symlinked_blob_in_a_layout_is_refused(store: ImageStore, tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "oci", [BASE])
    blobs = layout / "blobs/sha256"
    victim = max(blobs.iterdir(), key=lambda p: p.stat().st_size)
    outside = tmp_path / "outside"
    victim.rename(outside)
    victim.symlink_to(outside)
    with pytest.raises(InvalidImage, match="cannot open"):
        store.import_path(layout)
    nothing_left(store)


def test_mismatched_diff_ids_are_refused(store: ImageStore, tmp_path: Path) -> None:
    path = docker_archive(tmp_path / "d.tar", [BASE], ["x:1"])
    data = path.read_bytes().replace(b'"etc/a"', b'"etc/a"')
    cfg = json.dumps(
        {"os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(b"x")]}}
    ).encode()
    members = [
        file("c.json", cfg),
        file("l.tar", BASE),
        file("manifest.json", json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode()),
    ]
    path.write_bytes(tar_bytes(members) or data)
    with pytest.raises(InvalidImage, match="does not match its diff id"):
        store.import_path(path)
    nothing_left(store)


def test_rootfs_detection(store: ImageStore, busybox_tar: Path, tmp_path: Path) -> None:
    assert detect(busybox_tar, store) == "rootfs"
    gz = tmp_path / "bb.tar.gz"
    gz.write_bytes(gzip.compress(busybox_tar.read_bytes(), 1))
    image = store.import_path(gz, "bbgz")
    assert (store.layer_dirs(image)[0] / "bin/busybox").is_file()


@needs_skopeo
@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_what_we_save_skopeo_reads_and_what_skopeo_writes_we_import(
    state_root: Path, busybox_tar: Path, tmp_path: Path, fmt: str
) -> None:
    store = ImageStore(state_root / "images")
    image = store.import_rootfs_tar(busybox_tar, "busybox:rt")
    out = tmp_path / f"saved-{fmt}.tar"
    store.save(["busybox:rt"], out, fmt)
    transport = "oci-archive" if fmt == "oci" else "docker-archive"
    info = json.loads(skopeo("inspect", "--config", f"{transport}:{out}"))
    assert info["rootfs"]["diff_ids"] == list(image.layers)

    # skopeo copies what we saved into both formats; we import each into a fresh store.
    oci_dir = tmp_path / "sk-oci"
    docker_tar = tmp_path / "sk-docker.tar"
    skopeo("copy", "-q", f"{transport}:{out}", f"oci:{oci_dir}:sk")
    skopeo("copy", "-q", f"{transport}:{out}", f"docker-archive:{docker_tar}:skopeo/busybox:copied")
    fresh = ImageStore(tmp_path / "fresh")
    from_oci = fresh.import_path(oci_dir, "from-oci:1")
    from_docker = fresh.import_path(docker_tar)
    assert "docker.io/skopeo/busybox:copied" in from_docker.repo_tags
    for copy in (from_oci, from_docker):
        assert copy.layers == image.layers
        assert (fresh.layer_dirs(copy)[0] / "bin/busybox").read_bytes() == (
            store.layer_dirs(image)[0] / "bin/busybox"
        ).read_bytes()


@needs_skopeo
def test_skopeo_oci_archive_of_a_multi_layer_image(store: ImageStore, tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "oci", [BASE, TOP], ref_name="v1")
    archive = tmp_path / "sk.tar"
    skopeo("copy", "-q", f"oci:{layout}:v1", f"oci-archive:{archive}:example.org/two:layers")
    image = store.import_path(archive)
    assert image.repo_tags == ("example.org/two:layers",)
    saved = tmp_path / "two.tar"
    store.save(["example.org/two:layers"], saved, "docker")
    info = json.loads(skopeo("inspect", f"docker-archive:{saved}"))
    assert len(info["Layers"]) == 2
