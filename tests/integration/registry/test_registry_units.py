"""Parts of the registry client that need no registry and no root: references, endpoints,
challenges, the credentials file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from runtime.image.auth import AUTH_FILE, ENV_VAR, AuthFileError, Credentials
from runtime.image.digest import parse_reference
from runtime.image.registry import parse_challenge, registry_origin
from runtime.image.transfer import select_platform
from runtime.image.transport import Origin


def test_reference_normalisation_needs_no_network() -> None:
    ref = parse_reference("localhost:5000/busybox:1")
    assert (ref.domain, ref.path, ref.tag) == ("localhost:5000", "busybox", "1")
    assert registry_origin(ref.domain) == Origin("http", "localhost", 5000)
    assert registry_origin("127.0.0.1:5000") == Origin("http", "127.0.0.1", 5000)
    hub = parse_reference("busybox")
    assert (hub.domain, hub.path, hub.tag) == ("docker.io", "library/busybox", "latest")
    assert registry_origin(hub.domain) == Origin("https", "registry-1.docker.io", 443)
    assert registry_origin("ghcr.io") == Origin("https", "ghcr.io", 443)
    assert registry_origin("registry.example:8443").scheme == "https"
    assert parse_challenge(
        'Bearer realm="http://a/token",service="reg",scope="repository:x:pull"'
    ) == (
        "bearer",
        {"realm": "http://a/token", "service": "reg", "scope": "repository:x:pull"},
    )


def test_platform_selection_prefers_the_exact_variant() -> None:
    def desc(arch: str, variant: str | None = None, digest: str = "") -> dict[str, object]:
        plat = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        return {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "platform": plat,
        }

    index = {
        "manifests": [desc("arm64", None, "a"), desc("arm64", "v8", "b"), desc("amd64", None, "c")]
    }
    assert select_platform(index, ("linux", "arm64", "v8"))["digest"] == "b"
    assert select_platform(index, ("linux", "arm64", None))["digest"] == "a"
    assert select_platform(index, ("linux", "amd64", None))["digest"] == "c"
    attestation = {"manifests": [desc("unknown", None, "x")]}
    with pytest.raises(Exception, match="no image for linux/amd64"):
        select_platform(attestation, ("linux", "amd64", None))


def test_credentials_file(tmp_path: Path) -> None:
    creds = Credentials.load(tmp_path, env={})
    assert creds.get("localhost:5000") is None
    creds.set("http://LOCALHOST:5000/", "bob", "p:ss word")
    creds.set("https://index.docker.io/v1/", "hubuser", "x")
    path = tmp_path / AUTH_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Credentials.load(tmp_path, env={})
    assert again.get("localhost:5000") == ("bob", "p:ss word")
    assert again.get("docker.io") == ("hubuser", "x")
    assert again.registries() == ["docker.io", "localhost:5000"]
    env = {ENV_VAR: json.dumps({"auths": {"localhost:5000": {"username": "e", "password": "v"}}})}
    assert Credentials.load(tmp_path, env=env).get("localhost:5000") == ("e", "v")
    assert again.remove("localhost:5000") and not again.remove("localhost:5000")
    assert Credentials.load(tmp_path, env={}).registries() == ["docker.io"]
    path.write_text("{not json")
    with pytest.raises(AuthFileError, match="not valid JSON"):
        Credentials.load(tmp_path, env={})
    with pytest.raises(AuthFileError, match="user name"):
        Credentials(None).set("x", "a:b", "c")
