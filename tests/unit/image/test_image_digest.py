from __future__ import annotations

import pytest

from runtime.image.digest import (
    InvalidReference,
    digest_hex,
    is_full_id,
    parse_reference,
    parse_tagged,
    validate_digest,
)

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
        ("me/app:v1.0-rc_1", "docker.io/me/app:v1.0-rc_1", "me/app:v1.0-rc_1"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/a/b:c", "localhost:5000/a/b:c", "localhost:5000/a/b:c"),
        ("quay.io/x/y", "quay.io/x/y:latest", "quay.io/x/y:latest"),
        ("Registry.Example/x", "Registry.Example/x:latest", "Registry.Example/x:latest"),
        ("a__b/c-d--e.f", "docker.io/a__b/c-d--e.f:latest", "a__b/c-d--e.f:latest"),
        (
            f"busybox@sha256:{HEX}",
            f"docker.io/library/busybox@sha256:{HEX}",
            f"busybox@sha256:{HEX}",
        ),
        (f"b:t@sha256:{HEX}", f"docker.io/library/b:t@sha256:{HEX}", f"b:t@sha256:{HEX}"),
    ],
)
def test_references_normalise_as_docker_does(text: str, canonical: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == canonical
    assert ref.familiar == familiar


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Busybox",
        "busybox:",
        "busybox:-bad",
        "busybox:" + "x" * 129,
        "a//b",
        "a/-b",
        "/busybox",
        "busybox@sha256:abc",
        "busybox@md5:" + "a" * 32,
        "../etc",
        HEX,
        "a" * 300,
        "bad domain.io/x",
    ],
)
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(text)


def test_tag_refuses_a_digest() -> None:
    with pytest.raises(InvalidReference):
        parse_tagged(f"busybox@sha256:{HEX}")


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:../../etc/passwd",
        "sha512:" + "a" * 128,
        "sha256:" + "a" * 64 + "/x",
        "a" * 64,
    ],
)
def test_invalid_digests_are_refused(digest: str) -> None:
    with pytest.raises(InvalidReference):
        validate_digest(digest)


def test_digest_helpers() -> None:
    assert digest_hex("sha256:" + HEX) == HEX
    assert is_full_id(HEX) and is_full_id("sha256:" + HEX)
    assert not is_full_id(HEX[:12])
