"""Digests and image references, validated before they touch a path or a lookup.

    >>> validate_digest("sha256:" + "ab" * 32)
    'sha256:abab...'
    >>> ref = parse_reference("busybox")
    >>> str(ref), ref.familiar
    ('docker.io/library/busybox:latest', 'busybox:latest')

References follow Docker's normalisation: a first component without ``.`` or ``:`` (and not
``localhost``) is a Docker Hub path, ``index.docker.io`` is ``docker.io``, a single-component Hub
name gains ``library/``, a reference without tag or digest gets ``:latest``. A bare 64-hex string
is refused as a name (it would be ambiguous with an image id).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from runtime.errors import Error


class InvalidReference(Error):
    """A digest or image reference is malformed."""


SHA256 = "sha256"
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_HEX64_RE = re.compile(r"[a-f0-9]{64}")

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_ANY_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:`` followed by 64 lowercase hex digits, else raise."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        shown = digest if isinstance(digest, str) and len(digest) < 100 else "(too long)"
        if isinstance(digest, str) and _ANY_DIGEST_RE.fullmatch(digest):
            raise InvalidReference(f"unsupported digest {shown!r}: only sha256 is supported")
        raise InvalidReference(f"invalid digest {shown!r}")
    return digest


def digest_hex(digest: str) -> str:
    """The 64 hex digits of a validated digest (safe to use as a file name)."""
    return validate_digest(digest).partition(":")[2]


def sha256_digest(data: bytes) -> str:
    return f"{SHA256}:{hashlib.sha256(data).hexdigest()}"


def is_full_id(text: str) -> bool:
    """``sha256:<64 hex>`` or a bare 64-hex image id."""
    return bool(_DIGEST_RE.fullmatch(text) or _HEX64_RE.fullmatch(text))


def short_id(digest: str) -> str:
    """The 12-hex id shown to people."""
    return digest.partition(":")[2][:12]


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """``busybox`` for Docker Hub official images, the full name elsewhere."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
            path = path[len(OFFICIAL_PREFIX) :]
        return path

    @property
    def familiar(self) -> str:
        return self._format(self.familiar_name)

    def __str__(self) -> str:
        return self._format(self.name)

    def _format(self, name: str) -> str:
        text = name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``NAME[:TAG][@DIGEST]``.

    Without tag and digest the tag becomes ``latest`` unless ``default_tag`` is false.
    """
    if not isinstance(text, str) or not text:
        raise InvalidReference("empty image reference")
    if len(text) > 1024:
        raise InvalidReference("image reference too long")
    if _HEX64_RE.fullmatch(text):
        raise InvalidReference(
            f"invalid reference {text!r}: a 64-hex string is an image id, not a repository name"
        )
    remainder = text
    digest: str | None = None
    if "@" in remainder:
        remainder, _, digest = remainder.rpartition("@")
        validate_digest(digest)
    tag: str | None = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag!r} in reference {text!r}")
    domain, path = _split_domain(remainder, text)
    if not _PATH_RE.fullmatch(path):
        if path.lower() != path and _PATH_RE.fullmatch(path.lower()):
            raise InvalidReference(f"invalid reference {text!r}: repository name must be lowercase")
        raise InvalidReference(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
        raise InvalidReference(f"repository name too long in {text!r}")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _split_domain(name: str, text: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        domain, path = DEFAULT_DOMAIN, name
    else:
        if not _DOMAIN_RE.fullmatch(first):
            raise InvalidReference(f"invalid registry domain {first!r} in reference {text!r}")
        domain, path = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse_tagged(text: str) -> Reference:
    """A reference that names a tag (``NAME[:TAG]``), as ``tag`` and ``import`` need."""
    ref = parse_reference(text)
    if ref.digest is not None:
        raise InvalidReference(f"{text!r}: a tag cannot include a digest")
    return ref
