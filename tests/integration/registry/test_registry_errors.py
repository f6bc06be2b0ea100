"""Failures: each is one clear line naming the reference, fast, and a failed pull registers
nothing in the store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.cli import main
from runtime.image import ImageStore
from runtime.image.registry import (
    DigestMismatch,
    ManifestUnknown,
    RegistryClient,
    UnsupportedMediaType,
)
from runtime.image.transfer import pull, push
from runtime.image.transport import Unreachable
from tests.integration.registry.helpers import (
    Proxy,
    ProxyConfig,
    Registry,
    free_port,
    silent_server,
)

pytestmark = pytest.mark.root  # the store extracts layers


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_unreachable_registry_fails_fast(
    state_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens there
    ref = f"127.0.0.1:{port}/nothing:1"
    start = time.monotonic()
    assert main(["pull", ref]) == 1
    assert time.monotonic() - start < 2
    line = _one_line(capsys.readouterr().err)
    assert line == (
        f"orchestrator: cannot pull {ref}: cannot connect to 127.0.0.1:{port}: Connection refused"
    )


def test_registry_that_never_answers_times_out(store: ImageStore) -> None:
    with silent_server() as port:
        client = RegistryClient(f"127.0.0.1:{port}", read_timeout=0.5)
        start = time.monotonic()
        with client, pytest.raises(Unreachable, match=r"did not answer within 0.5s"):
            pull(store, f"127.0.0.1:{port}/slow:1", client=client)
        assert time.monotonic() - start < 3


def test_manifest_unknown(
    registry: Registry, state_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{registry.domain}/no/such:tag"
    assert main(["pull", ref]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == f"orchestrator: cannot pull {ref}: manifest unknown: tag is not in no/such"
    with pytest.raises(ManifestUnknown):
        pull(ImageStore(state_root / "images"), ref)
    assert main(["push", f"{registry.domain}/not-in-the-store:1"]) == 1
    assert "no such image" in _one_line(capsys.readouterr().err)


def test_push_by_id_needs_a_destination(
    registry: Registry,
    store: ImageStore,
    small_image: Callable[[str, bytes], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    image_id = small_image(f"{registry.domain}/byid:1", b"by id\n")
    short = image_id[7:19]
    assert main(["push", short]) == 1  # would otherwise mean docker.io/library/<short>
    line = _one_line(capsys.readouterr().err)
    assert line.endswith(
        f"'{short}' is not a name of image {short}: give the destination (push SOURCE DEST)"
    )
    assert main(["push", "-q", short, f"{registry.domain}/byid:2"]) == 0
    assert capsys.readouterr().out.startswith("sha256:")


@pytest.fixture
def pushed(
    registry: Registry, store: ImageStore, small_image: Callable[[str, bytes], str]
) -> Iterator[str]:
    """An image pushed to the plain registry; yields its repository path."""
    ref = f"{registry.domain}/victim:1"
    small_image(ref, b"x" * 100_000)
    push(store, ref)
    yield "victim"


def test_digest_mismatch_registers_nothing(
    registry: Registry,
    pushed: str,
    new_store: Callable[[], ImageStore],
    state_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Proxy(ProxyConfig(upstream=registry.port, corrupt_blobs=True)) as proxy:
        ref = f"{proxy.domain}/{pushed}:1"
        target = new_store()
        with pytest.raises(
            DigestMismatch,
            match=rf"cannot pull {ref}: blob content does not match its digest sha256:\w+ \(got sha256:",
        ):
            pull(target, ref)
        assert target.list() == []
        other_root = state_root / "other"
        assert main(["--root", str(other_root), "pull", ref]) == 1
        err = capsys.readouterr().err  # progress lines, then the error
        assert "Traceback" not in err
        lines = err.splitlines()
        assert [line for line in lines if line.startswith("orchestrator:")] == lines[-1:]
        assert lines[-1].startswith(
            f"orchestrator: cannot pull {ref}: blob content does not match its digest sha256:"
        )
        assert ImageStore(other_root / "images").list() == []


def test_cut_download_resumes_with_range(
    registry: Registry, pushed: str, new_store: Callable[[], ImageStore]
) -> None:
    with Proxy(ProxyConfig(upstream=registry.port, cut_blobs=1)) as proxy:
        result = pull(new_store(), f"{proxy.domain}/{pushed}:1")
        assert result.image.repo_tags == (f"{proxy.domain}/{pushed}:1",)
        ranged = [r for r in proxy.config.requests if r[0] == "GET" and "/blobs/" in r[1]]
        assert len(ranged) == 3  # config, layer (cut), layer again from the middle


def test_manifest_tampering_and_unsupported_types(
    registry: Registry, new_store: Callable[[], ImageStore]
) -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": "old", "tag": "1", "fsLayers": []}).encode()
    ctype = {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}
    bad_digest = {
        "Content-Type": "application/vnd.oci.image.manifest.v1+json",
        "Docker-Content-Digest": "sha256:" + "0" * 64,
    }
    foreign = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + "1" * 64,
                "size": 2,
            },
            "layers": [
                {"mediaType": "application/x-weird", "digest": "sha256:" + "2" * 64, "size": 1}
            ],
        }
    ).encode()
    helm = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.cncf.helm.chart.v1"}
    ).encode()
    canned = {
        "/v2/old/manifests/1": (200, ctype, schema1),
        "/v2/tampered/manifests/1": (200, bad_digest, foreign),
        "/v2/weird/manifests/1": (
            200,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            foreign,
        ),
        "/v2/helm/manifests/1": (200, {"Content-Type": "application/json"}, helm),
    }
    with Proxy(ProxyConfig(upstream=registry.port, canned=canned)) as proxy:
        store = new_store()
        with pytest.raises(UnsupportedMediaType, match="schema 1, which is not supported"):
            pull(store, f"{proxy.domain}/old:1")
        with pytest.raises(DigestMismatch, match="the registry says sha256:0000"):
            pull(store, f"{proxy.domain}/tampered:1")
        with pytest.raises(
            UnsupportedMediaType, match="unsupported layer media type 'application/x-weird'"
        ):
            pull(store, f"{proxy.domain}/weird:1")
        with pytest.raises(UnsupportedMediaType, match=r"application/vnd\.cncf\.helm\.chart\.v1"):
            pull(store, f"{proxy.domain}/helm:1")
        assert store.list() == []
