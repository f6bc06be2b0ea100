"""Push to and pull from a real registry (Debian's docker-registry on 127.0.0.1)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from runtime.image import ImageStore
from runtime.image.model import DOCKER_MANIFEST, OCI_INDEX
from runtime.image.registry import RegistryClient
from runtime.image.transfer import host_platform, pull, push
from tests.image_fixtures import file, image_config, oci_layout, sha256, tar_bytes
from tests.integration.registry.helpers import Registry

pytestmark = pytest.mark.root  # the store extracts layers (chown to the layer's owners)


def test_push_then_pull_busybox_gives_the_same_image(
    registry: Registry,
    store: ImageStore,
    new_store: Callable[[], ImageStore],
    busybox_tar: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = f"{registry.domain}/busybox:1"
    image = store.import_rootfs_tar(busybox_tar, ref)

    start = time.monotonic()
    pushed = push(store, ref)
    push_time = time.monotonic() - start
    assert pushed.uploaded and not pushed.existing
    assert pushed.digest == image.manifest_digest

    other = new_store()
    start = time.monotonic()
    pulled = pull(other, ref)
    pull_time = time.monotonic() - start
    assert pulled.image.id == image.id
    assert pulled.image.manifest_digest == image.manifest_digest
    assert pulled.digest == image.manifest_digest
    assert other.resolve(ref).id == image.id
    assert [d.name for d in other.layer_dirs(pulled.image)] == [
        d.name for d in other.layer_dirs(other.resolve(ref))
    ]
    assert (other.layer_dirs(pulled.image)[0] / "bin" / "busybox").is_file()
    print(f"busybox push {push_time:.3f}s pull {pull_time:.3f}s")  # shown with -s

    # Pulling again downloads nothing.
    again = pull(other, ref)
    assert again.downloaded == [] and len(again.existing) == 2
    capsys.readouterr()


def test_cli_pull_and_push_print_plain_lines(
    registry: Registry,
    state_root: Path,
    small_image: Callable[[str, bytes], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = f"{registry.domain}/cli/hello:v1"
    image_id = small_image(ref, b"cli\n")
    assert main(["push", ref]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("v1: digest: sha256:")
    assert "Pushed" in err and "\x1b[" not in err  # not a terminal: plain lines
    # A second root pulls it.
    other = state_root / "other"
    assert main(["--root", str(other), "pull", ref]) == 0
    out, err = capsys.readouterr()
    assert "Digest: sha256:" in out
    assert f"Downloaded newer image for {ref}" in out
    assert "Download complete" in err
    assert ImageStore(other / "images").resolve(ref).id == image_id
    assert main(["--root", str(other), "pull", "-q", ref]) == 0
    assert capsys.readouterr().out == ref + "\n"


def test_pull_by_digest(
    registry: Registry,
    store: ImageStore,
    new_store: Callable[[], ImageStore],
    small_image: Callable[[str, bytes], str],
) -> None:
    ref = f"{registry.domain}/bydigest:1"
    small_image(ref, b"by digest\n")
    digest = push(store, ref).digest
    other = new_store()
    result = pull(other, f"{registry.domain}/bydigest@{digest}")
    assert result.image.manifest_digest == digest
    assert result.image.repo_tags == ()  # a digest reference is not a tag
    assert other.resolve(f"{registry.domain}/bydigest@{digest}").id == result.image.id


def test_second_push_skips_existing_blobs(
    registry: Registry, store: ImageStore, small_image: Callable[[str, bytes], str]
) -> None:
    ref = f"{registry.domain}/skip:1"
    small_image(ref, b"skip me\n")
    with RegistryClient(registry.domain) as client:
        first = push(store, ref, client=client)
        stats = client.statistics()
    assert len(first.uploaded) == 2 and stats["POST"] == 2
    with RegistryClient(registry.domain) as client:
        second = push(store, ref, client=client)
        stats = client.statistics()
    assert second.uploaded == [] and len(second.existing) == 2
    assert stats.get("POST", 0) == 0 and stats.get("PATCH", 0) == 0
    assert stats["HEAD"] == 2 and stats["PUT"] == 1  # one HEAD per blob, then the manifest
    assert stats["connections"] <= 2  # keep-alive: at most one connection per parallel worker


def test_chunked_upload_and_cross_repository_mount(
    registry: Registry,
    store: ImageStore,
    new_store: Callable[[], ImageStore],
    small_image: Callable[[str, bytes], str],
) -> None:
    ref = f"{registry.domain}/chunked:1"
    data = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB, barely compressible
    image_id = small_image(ref, data)
    with RegistryClient(registry.domain) as client:
        push(store, ref, client=client, chunk_size=8192)
        stats = client.statistics()
    assert stats["PATCH"] > 2
    pulled = pull(new_store(), ref)
    assert pulled.image.id == image_id

    # The same image under another repository of this registry: blobs are mounted, not sent.
    image = store.resolve(ref)
    store.tag(image, f"{registry.domain}/mounted:1")
    result = push(store, f"{registry.domain}/mounted:1")
    assert result.uploaded == [] and len(result.mounted) == 2
    assert pull(new_store(), f"{registry.domain}/mounted:1").image.id == image_id


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_skopeo_push_then_pull_with_ours(
    registry: Registry, new_store: Callable[[], ImageStore], tmp_path: Path, fmt: str
) -> None:
    """skopeo pushes an OCI layout as is (``oci``) or converted to Docker schema 2 (``v2s2``)."""
    layers = [tar_bytes([file("a.txt", b"layer one\n")]), tar_bytes([file("b.txt", b"two\n")])]
    layout = oci_layout(tmp_path / "layout", layers, "latest", Env=["A=1"])
    ref = f"{registry.domain}/from-skopeo-{fmt}:1"
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            fmt,
            f"oci:{layout}:latest",
            f"docker://{ref}",
        ],
        check=True,
        timeout=60,
    )
    result = pull(new_store(), ref)
    assert result.image.env == ["A=1"]
    assert result.image.layers == tuple(sha256(layer) for layer in layers)
    if fmt == "oci":
        index = json.loads((layout / "index.json").read_text())
        assert result.manifest_digest == index["manifests"][0]["digest"]
        assert result.image.id == sha256(image_config(list(result.image.layers), Env=["A=1"]))
    else:
        assert result.image.manifest_media_type == DOCKER_MANIFEST


def _push_raw_image(
    client: RegistryClient, repo: str, arch: str, payload: bytes
) -> dict[str, object]:
    """Push a one-layer image built here for ``arch``; returns its index descriptor."""
    layer = gzip.compress(tar_bytes([file("arch.txt", payload)]), 1)
    config = json.loads(image_config([sha256(gzip.decompress(layer))]))
    config["architecture"] = arch
    config_bytes = json.dumps(config).encode()
    for blob in (layer, config_bytes):
        client.upload_blob(repo, sha256(blob), len(blob), io.BytesIO(blob))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config_bytes),
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = client.put_manifest(
        repo, sha256(manifest), "application/vnd.oci.image.manifest.v1+json", manifest
    )
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": len(manifest),
        "platform": {
            "os": "linux",
            "architecture": arch,
            **({"variant": "v8"} if arch == "arm64" else {}),
        },
        "_config": sha256(config_bytes),
    }


def test_index_resolves_to_this_platform(
    registry: Registry, new_store: Callable[[], ImageStore]
) -> None:
    repo = "multi"
    with RegistryClient(registry.domain) as client:
        descs = [
            _push_raw_image(client, repo, arch, arch.encode())
            for arch in ("amd64", "arm64", "s390x")
        ]
        configs = {d["platform"]["architecture"]: d.pop("_config") for d in descs}  # type: ignore[index]
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}
        ).encode()
        index_digest = client.put_manifest(repo, "1", OCI_INDEX, index)

    ref = f"{registry.domain}/{repo}:1"
    _, arch, _ = host_platform()
    result = pull(new_store(), ref)
    assert result.digest == index_digest
    assert result.image.id == configs[arch]
    assert result.image.architecture == arch

    other = pull(new_store(), ref, platform=("linux", "s390x", None))
    assert other.image.id == configs["s390x"]

    from runtime.image.registry import UnsupportedMediaType

    with pytest.raises(UnsupportedMediaType, match=r"no image for linux/riscv64 .*linux/amd64"):
        pull(new_store(), ref, platform=("linux", "riscv64", None))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal(
    registry: Registry,
    state_root: Path,
    small_image: Callable[[str, bytes], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = f"{registry.domain}/bars:1"
    small_image(ref, b"bars\n" * 1000)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["push", ref]) == 0
    assert main(["--root", str(state_root / "other"), "pull", ref]) == 0
    drawn = terminal.getvalue()
    assert "\x1b[2K" in drawn and "\x1b[2A" in drawn  # lines redrawn in place
    assert "Pushing" in drawn and "Downloading" in drawn
    assert "[>  " in drawn and "Pushed (" in drawn and "Download complete (" in drawn
    capsys.readouterr()
