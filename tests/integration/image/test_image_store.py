"""ImageStore: import, sharing, tags, removal, prune, the registry-facing blob API."""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
from pathlib import Path

import pytest

from runtime.errors import NotFound
from runtime.image import MAX_LAYERS, ImageInUse, ImageStore, InvalidImage, InvalidReference
from runtime.image.digest import parse_reference
from tests.image_fixtures import file, image_config, sha256, tar_bytes

pytestmark = pytest.mark.root


def layer_tar(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.tar"
    path.write_bytes(tar_bytes([file(name, data)]))
    return path


def test_busybox_rootfs_import(store: ImageStore, busybox_tar: Path) -> None:
    image = store.import_rootfs_tar(busybox_tar, "busybox")
    assert image.repo_tags == ("docker.io/library/busybox:latest",)
    [layer] = store.layer_dirs(image)
    assert layer.parent == store.layers_root and len(layer.name) == 12
    assert (layer / "bin/busybox").stat().st_mode & 0o111
    assert os.readlink(layer / "bin/sh") == "/bin/busybox"
    assert "root:x:0:0" in (layer / "etc/passwd").read_text()
    assert (layer / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert image.env and image.env[0].startswith("PATH=")
    assert image.os == "linux" and image.size > 1_000_000
    for name in (
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox",
        image.id,
        image.id[7:],
        image.short_id,
    ):
        assert store.resolve(name).id == image.id
    assert store.resolve(f"busybox@{image.manifest_digest}").id == image.id
    _, manifest = store.manifest_of(image)
    assert json.loads(manifest)["config"]["digest"] == image.id
    assert sorted(os.listdir(store.tmp_root)) == []


def test_layers_are_shared(store: ImageStore, tmp_path: Path) -> None:
    tar = layer_tar(tmp_path, "a", b"same")
    one = store.import_rootfs_tar(tar, "one")
    gz = tmp_path / "a.tar.gz"
    gz.write_bytes(gzip.compress(tar.read_bytes()))
    two = store.import_rootfs_tar(gz, "two")
    assert store.layer_dirs(one) == store.layer_dirs(two)
    assert len(os.listdir(store.layers_root)) == 1
    assert one.layer_blobs != two.layer_blobs  # the gzip blob is kept as given


def test_concurrent_imports_of_one_layer(state_root: Path, tmp_path: Path) -> None:
    tar = tmp_path / "big.tar"
    tar.write_bytes(tar_bytes([file(f"f{i}", os.urandom(2000)) for i in range(300)]))
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            ImageStore(state_root / "images").import_rootfs_tar(tar, f"c:{n}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = ImageStore(state_root / "images")
    assert sorted(t for i in store.list() for t in i.repo_tags) == [
        f"docker.io/library/c:{n}" for n in range(4)
    ]
    assert len(os.listdir(store.layers_root)) == 1
    [layer] = store.layer_dirs(store.resolve("c:3"))
    assert len(os.listdir(layer)) == 300


def test_tag_remove_and_prune(state_root: Path, tmp_path: Path) -> None:
    used: set[str] = set()
    store = ImageStore(state_root / "images", in_use=lambda: used)
    image = store.import_rootfs_tar(layer_tar(tmp_path, "a", b"a"), "app:1")
    store.tag(image, "app:2")
    store.tag(image, "registry.example:5000/team/app:3")
    assert store.resolve("app:2").id == image.id
    with pytest.raises(ImageInUse, match="several names"):
        store.remove(image.id)
    assert store.remove("app:2") == ["Untagged: app:2"]
    used.add(image.id)
    store.remove("registry.example:5000/team/app:3")
    with pytest.raises(ImageInUse, match="used by a container"):
        store.remove("app:1")
    assert store.remove("app:1", force=True) == ["Untagged: app:1"]
    # Still there for the container, untagged, its layer intact.
    assert store.resolve(image.id).repo_tags == ()
    assert store.layer_dirs(image)[0].is_dir()
    assert store.prune() == []
    used.clear()
    out = store.prune()
    assert f"Deleted: {image.id}" in out
    assert store.list() == []
    assert os.listdir(store.layers_root) == [] and os.listdir(store.blobs_root) == []


def test_rmi_deletes_unshared_layers_and_blobs(store: ImageStore, tmp_path: Path) -> None:
    # (names that are not hex: "a" would also be a prefix of one id in 16, the other image's)
    a = store.import_rootfs_tar(layer_tar(tmp_path, "a", b"a"), "first")
    b = store.import_rootfs_tar(layer_tar(tmp_path, "b", b"b"), "second")
    out = store.remove("first")
    assert out[:2] == ["Untagged: first:latest", f"Deleted: {a.id}"]
    assert len(os.listdir(store.layers_root)) == 1
    assert not store.has_blob(a.id) and store.has_blob(b.id)
    with pytest.raises(NotFound, match="no such image: first"):
        store.resolve("first")


def test_not_found_and_bad_refs(store: ImageStore) -> None:
    with pytest.raises(NotFound, match="no such image: nope"):
        store.resolve("nope")
    with pytest.raises(InvalidReference):
        store.resolve("Not/Valid")
    with pytest.raises(InvalidReference):
        store.blob_path("sha256:../../etc/passwd")


def test_registry_style_ingest_and_add_manifest(store: ImageStore) -> None:
    layer = tar_bytes([file("hello", b"world")])
    blob = gzip.compress(layer)
    cfg = image_config([sha256(layer)], Cmd=["/hello"], StopSignal="SIGINT")
    with pytest.raises(InvalidImage, match="does not match its digest"):
        store.ingest_blob(io.BytesIO(blob + b"x"), sha256(blob))
    with pytest.raises(InvalidImage, match="larger than"):
        store.ingest_blob(io.BytesIO(blob), sha256(blob), len(blob) - 1)
    assert store.ingest_blob(io.BytesIO(blob), sha256(blob), len(blob)) == sha256(blob)
    assert store.ingest_blob(io.BytesIO(cfg)) == sha256(cfg)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": sha256(cfg),
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": sha256(blob),
                    "size": len(blob),
                }
            ],
        }
    ).encode()
    image = store.add_manifest(manifest, ["example.com/hello:1"])
    assert image.cmd == ["/hello"] and image.stop_signal == "SIGINT"
    assert (store.layer_dirs(image)[0] / "hello").read_bytes() == b"world"
    assert store.manifest_of(image) == (
        "application/vnd.docker.distribution.manifest.v2+json",
        manifest,
    )
    assert store.resolve("example.com/hello:1") == image


def test_add_manifest_checks_the_diff_id(store: ImageStore) -> None:
    layer = tar_bytes([file("hello", b"world")])
    cfg = image_config([sha256(b"another layer")])
    store.ingest_blob(io.BytesIO(layer))
    store.ingest_blob(io.BytesIO(cfg))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(cfg),
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    with pytest.raises(InvalidImage, match="does not match its diff id"):
        store.add_manifest(manifest, ["x"])
    assert store.list() == [] and os.listdir(store.layers_root) == []


def test_too_many_layers_is_refused_clearly(store: ImageStore) -> None:
    n = MAX_LAYERS + 1
    layers = [tar_bytes([file(f"f{i}")]) for i in range(n)]
    cfg = image_config([sha256(x) for x in layers])
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(cfg),
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(x),
                    "size": len(x),
                }
                for x in layers
            ],
        }
    ).encode()
    with pytest.raises(InvalidImage, match=f"image has {n} layers; at most {MAX_LAYERS}"):
        store.add_manifest(manifest)


def test_state_is_replaced_atomically(store: ImageStore, tmp_path: Path) -> None:
    store.import_rootfs_tar(layer_tar(tmp_path, "a", b"a"), "a")
    names = os.listdir(store.root)
    assert not [n for n in names if n.startswith(".")]
    state = json.loads((store.root / "state.json").read_text())
    assert list(state["refs"]) == [str(parse_reference("a"))]
    index = json.loads((store.root / "index.json").read_text())
    assert (
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        == "docker.io/library/a:latest"
    )


def test_import_of_a_missing_file(store: ImageStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidImage, match="cannot read"):
        store.import_rootfs_tar(tmp_path / "nope.tar", "x")


def test_a_blob_changed_on_disk_is_caught_after_it_was_read(
    store: ImageStore, tmp_path: Path
) -> None:
    # (small blobs are read and checked once per file in a process: runtime.image.store)
    image = store.import_rootfs_tar(layer_tar(tmp_path, "c", b"c"), "checked")
    again = ImageStore(store.root)  # another store object of the same root: read once only
    assert again.resolve("checked").config == image.config
    path = store.blob_path(image.id)
    data = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(data.replace(b'"architecture"', b'"Architecture"'))  # the same size
    with pytest.raises(InvalidImage, match="does not match its digest"):
        ImageStore(store.root).resolve("checked")
