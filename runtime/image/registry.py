"""A client for the OCI distribution API of one registry: manifests, blobs, uploads.

    with RegistryClient.for_domain("localhost:5000", Credentials.load(state_root)) as client:
        manifest = client.get_manifest("busybox", "1")
        reader = client.open_blob("busybox", digest, size)

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` sends the stored
credentials; ``Bearer realm=...,service=...,scope=...`` fetches a token from the realm (with the
credentials, if any) for the repository and actions needed, caches it until it expires and
retries once. Credentials are never sent to another origin (a redirect to blob storage, say).

Manifests are verified against their digests (one fetched by tag against the registry's
``Docker-Content-Digest``), blob downloads against their descriptors' sizes, and a cut blob
download resumes with ``Range``. Connections, redirects and retries are ``transport``'s;
walking images and copying them in and out of the store is ``transfer``'s.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from runtime.errors import Error
from runtime.image.digest import DEFAULT_DOMAIN
from runtime.image.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)
from runtime.image.transport import (
    CONNECT_TIMEOUT,
    MAX_ERROR_BODY,
    READ_TIMEOUT,
    USER_AGENT,
    Body,
    Cancelled,
    Origin,
    RegistryError,
    Response,
    Transport,
    add_query,
    error_reason,
    split_url,
)

if TYPE_CHECKING:
    from runtime.image.auth import Credentials

__all__ = [
    "AuthenticationError",
    "BlobReader",
    "DigestMismatch",
    "Manifest",
    "ManifestUnknown",
    "RegistryClient",
    "UnsupportedMediaType",
    "is_local_host",
    "parse_challenge",
    "pull_scope",
    "push_scope",
    "registry_origin",
]

MANIFEST_ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
MAX_MANIFEST = 4 << 20
RESUMES = 3
HUB_REGISTRY = "registry-1.docker.io"
_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)


# -- errors -----------------------------------------------------------------------------------------


class AuthenticationError(RegistryError):
    """Credentials are missing, wrong, or do not grant the access needed."""


class ManifestUnknown(RegistryError):
    """No such repository, tag or digest in the registry."""


class DigestMismatch(RegistryError):
    """Content did not match its digest or its size."""


class UnsupportedMediaType(RegistryError):
    """A manifest or layer type we do not handle (schema 1, an unknown layer type...)."""


# -- where a registry answers -----------------------------------------------------------------------


def is_local_host(host: str) -> bool:
    """``localhost`` and loopback addresses: spoken to in plain HTTP."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_origin(domain: str) -> Origin:
    """Where the registry of a reference's domain answers (``docker.io`` is Docker Hub's)."""
    if domain == DEFAULT_DOMAIN:
        return Origin("https", HUB_REGISTRY, 443)
    host, _, port = domain.rpartition(":") if domain.count(":") == 1 else (domain, "", "")
    scheme = "http" if is_local_host(host) else "https"
    return Origin(scheme, host, int(port) if port else (80 if scheme == "http" else 443))


# -- the registry client ---------------------------------------------------------------------------


_CHALLENGE_RE = re.compile(r'([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://auth",service="reg",scope="a b"`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for key, value in _CHALLENGE_RE.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return scheme.lower(), params


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


@dataclass
class Manifest:
    """A manifest or an index as the registry served it, its digest verified."""

    media_type: str
    data: bytes
    digest: str

    def json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.data)
        except (ValueError, RecursionError):
            raise RegistryError(f"manifest {self.digest} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return doc


@dataclass
class _Token:
    value: str
    expires: float


class RegistryClient:
    """The distribution API of one registry. Thread-safe; ``close()`` drops idle connections.

    ``statistics()`` counts requests per method (auth and token requests included) and bytes.
    """

    def __init__(
        self,
        domain: str,
        credentials: tuple[str, str] | None = None,
        *,
        origin: Origin | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.domain = domain
        self.origin = origin or registry_origin(domain)
        self.credentials = credentials
        self._http = Transport(connect_timeout, read_timeout)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._basic = False

    @classmethod
    def for_domain(
        cls, domain: str, credentials: Credentials | None = None, **kw: Any
    ) -> RegistryClient:
        return cls(domain, credentials.get(domain) if credentials else None, **kw)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> dict[str, int]:
        out = self._http.statistics()
        out["requests"] = sum(v for k, v in out.items() if k.isupper())
        return out

    # -- requests and auth ----------------------------------------------------------------------

    def _authorization(self, scope: str | None) -> str | None:
        with self._lock:
            token = self._tokens.get(scope or "")
            if token is not None and token.expires > time.monotonic():
                return f"Bearer {token.value}"
            basic = self._basic
        if basic and self.credentials:
            return _basic_auth(self.credentials)
        return None

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str | None,
        headers: dict[str, str] | None = None,
        body: bytes | Body | None = None,
    ) -> Response:
        """Send a request, answering one auth challenge; the transport follows redirects and
        retries transient failures (GET and HEAD). The caller reads or drains the response."""
        url = path_or_url if "://" in path_or_url else str(self.origin) + path_or_url
        challenged = False

        def prepare(origin: Origin) -> dict[str, str]:
            sent = {"User-Agent": USER_AGENT, **(headers or {})}
            auth = self._authorization(scope) if origin == self.origin else None
            if auth:
                sent["Authorization"] = auth
            if body is None and method in ("POST", "PUT", "PATCH"):
                sent.setdefault("Content-Length", "0")
            return sent

        def unauthorized(resp: Response) -> bool:
            nonlocal challenged
            if resp.origin != self.origin:
                return False  # another origin's 401 (blob storage, say) goes to the caller
            challenge = resp.header("WWW-Authenticate") or ""
            had_auth = "Authorization" in resp.request_headers
            resp.drain()
            if challenged or not self._answer(challenge, scope, had_auth=had_auth):
                raise self._denied(scope)
            challenged = True
            return True

        return self._http.request(method, url, prepare, body, unauthorized=unauthorized)

    def _answer(self, challenge: str, scope: str | None, *, had_auth: bool) -> bool:
        """Prepare credentials for a retry; false if a retry cannot succeed."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            with self._lock:
                if self._basic and had_auth:
                    return False
                self._basic = True
            return self.credentials is not None
        if scheme == "bearer":
            realm = params.get("realm")
            if not realm:
                raise AuthenticationError(f"{self.domain} sent a Bearer challenge without realm")
            scopes = [s for s in (scope, params.get("scope")) if s]
            token = self._fetch_token(realm, params.get("service"), scopes)
            with self._lock:
                self._tokens[scope or ""] = token
            return True
        raise AuthenticationError(
            f"{self.domain} asks for unsupported authentication {scheme or '(none)'!r}"
        )

    def _fetch_token(self, realm: str, service: str | None, scopes: list[str]) -> _Token:
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        for s in dict.fromkeys(" ".join(scopes).split()):
            query.append(("scope", s))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        origin, _ = split_url(url)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.credentials:
            if origin.scheme != "https" and not is_local_host(origin.host):
                raise AuthenticationError(
                    f"token server {origin.netloc} is plain HTTP: refusing to send credentials"
                )
            headers["Authorization"] = _basic_auth(self.credentials)
        resp = self._http.send("GET", url, headers)
        if resp.status in (401, 403):
            resp.drain()
            who = f"user {self.credentials[0]!r}" if self.credentials else "anonymous access"
            raise AuthenticationError(
                f"token server {origin.netloc} refused {who} (wrong user name or password?)"
            )
        if resp.status != 200:
            raise self._failure(resp, f"token server {origin.netloc}")
        body = resp.read_all(MAX_ERROR_BODY, "token response")
        try:
            doc = json.loads(body)
        except ValueError:
            raise AuthenticationError(f"token server {origin.netloc} sent invalid JSON") from None
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"token server {origin.netloc} sent no token")
        expires_in = doc.get("expires_in")
        life = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60
        return _Token(value, time.monotonic() + max(life - 10, life / 2))

    def _denied(self, scope: str | None) -> AuthenticationError:
        if self.credentials is None:
            return AuthenticationError(
                f"{self.domain} requires authentication: run `orchestrator login {self.domain}`"
            )
        what = f" ({scope.split(':', 2)[-1]} on {scope.split(':')[1]})" if scope else ""
        return AuthenticationError(
            f"{self.domain} denied access{what} to user {self.credentials[0]!r}: "
            "wrong user name or password, or no permission"
        )

    def _failure(self, resp: Response, what: str) -> RegistryError:
        """An error for an unexpected response, from the registry's JSON error body if any."""
        status = resp.status
        try:
            body = resp.read_all(MAX_ERROR_BODY, "error body")
        except (Error, OSError, http.client.HTTPException):
            body = b""
        resp.close()
        codes: list[str] = []
        messages: list[str] = []
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
            for err in doc["errors"][:3]:
                if isinstance(err, dict):
                    codes.append(str(err.get("code", "")))
                    messages.append(str(err.get("message") or err.get("code") or "")[:200])
        detail = "; ".join(m for m in messages if m) or f"HTTP {status} {resp.reason}".strip()
        if status in (401, 403):
            return AuthenticationError(f"{what}: {detail}")
        if status == 404 or {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"} & set(codes):
            return ManifestUnknown(f"{what}: {detail}")
        if status == 415 or ("MANIFEST_INVALID" in codes and "media" in detail.lower()):
            return UnsupportedMediaType(f"{what}: {detail}")
        return RegistryError(f"{what}: {detail} (HTTP {status})")

    # -- the API ---------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``, authenticating if asked: what ``login`` checks credentials with."""
        resp = self.request("GET", "/v2/", scope=None)
        if resp.status != 200:
            raise self._failure(resp, f"{self.domain} is not a registry (GET /v2/)")
        resp.drain()

    def get_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = MANIFEST_ACCEPT
    ) -> Manifest:
        """A manifest or index by tag or digest, its digest verified."""
        resp = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scope=pull_scope(repo),
            headers={"Accept": ", ".join(accept)},
        )
        if resp.status == 404:
            resp.drain()
            raise ManifestUnknown(f"manifest unknown: {reference} is not in {repo}")
        if resp.status != 200:
            raise self._failure(resp, f"manifest {reference}")
        data = resp.read_all(MAX_MANIFEST, f"manifest {reference}")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {reference} served by the registry has digest {digest}")
        claimed = resp.header("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise DigestMismatch(
                f"manifest {reference} has digest {digest}, the registry says {claimed}"
            )
        content_type = (resp.header("Content-Type") or "").split(";")[0].strip()
        manifest = Manifest(content_type, data, digest)
        field_type = manifest.json().get("mediaType")
        if isinstance(field_type, str) and field_type:
            manifest.media_type = field_type
        elif manifest.media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
            doc = manifest.json()
            if doc.get("schemaVersion") == 2 and "manifests" in doc:
                manifest.media_type = OCI_INDEX
            elif doc.get("schemaVersion") == 2 and "config" in doc:
                manifest.media_type = OCI_MANIFEST
        if manifest.media_type in _SCHEMA1 or manifest.json().get("schemaVersion") == 1:
            raise UnsupportedMediaType(
                f"manifest {reference} is Docker schema 1, which is not supported"
            )
        if manifest.media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
            raise UnsupportedMediaType(
                f"manifest {reference} has unsupported media type {manifest.media_type!r}"
            )
        return manifest

    def blob_size(self, repo: str, digest: str, *, scope: str | None = None) -> int | None:
        """The size of a blob the registry has, ``None`` if it has not."""
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope or pull_scope(repo))
        resp.drain()
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._failure(resp, f"blob {digest}")
        length = resp.header("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def open_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        *,
        on_read: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> BlobReader:
        """A stream of the blob's bytes (at most ``size``); a cut connection resumes with Range."""
        return BlobReader(self, repo, digest, size, on_read, cancelled)

    def _blob_response(self, repo: str, digest: str, offset: int) -> Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.request(
            "GET", f"/v2/{repo}/blobs/{digest}", scope=pull_scope(repo), headers=headers
        )
        if resp.status == 404:
            resp.drain()
            raise ManifestUnknown(f"blob {digest} is not in {repo} (BLOB_UNKNOWN)")
        if resp.status != (206 if offset else 200):
            raise self._failure(resp, f"blob {digest}")
        return resp

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        source: BinaryIO,
        *,
        chunk_size: int | None = None,
        mount_from: str | None = None,
        on_read: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> str:
        """Upload a blob: POST a session then one PUT (monolithic), or PATCH chunks of
        ``chunk_size`` then a closing PUT. With ``mount_from``, ask for a cross-repository mount
        first. Returns ``"mounted"`` or ``"uploaded"``."""
        scope = push_scope(repo)
        path = f"/v2/{repo}/blobs/uploads/"
        if mount_from:
            path += "?" + urllib.parse.urlencode({"mount": digest, "from": mount_from})
        resp = self.request("POST", path, scope=scope)
        if resp.status == 201 and mount_from:
            resp.drain()
            return "mounted"
        if resp.status != 202 or not resp.header("Location"):
            raise self._failure(resp, f"upload of blob {digest}")
        location = urllib.parse.urljoin(resp.url, resp.header("Location") or "")
        resp.drain()
        if chunk_size and size > chunk_size:
            offset = 0
            while offset < size:
                n = min(chunk_size, size - offset)
                body = Body(source, offset, n, on_read, cancelled)
                resp = self.request(
                    "PATCH",
                    location,
                    scope=scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(n),
                        "Content-Range": f"{offset}-{offset + n - 1}",
                    },
                    body=body,
                )
                if resp.status != 202 or not resp.header("Location"):
                    raise self._failure(resp, f"upload of blob {digest} at offset {offset}")
                location = urllib.parse.urljoin(resp.url, resp.header("Location") or "")
                resp.drain()
                offset += n
            resp = self.request("PUT", add_query(location, digest=digest), scope=scope)
        else:
            resp = self.request(
                "PUT",
                add_query(location, digest=digest),
                scope=scope,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=Body(source, 0, size, on_read, cancelled),
            )
        if resp.status != 201:
            raise self._failure(resp, f"upload of blob {digest}")
        claimed = resp.header("Docker-Content-Digest")
        resp.drain()
        if claimed and claimed != digest:
            raise DigestMismatch(f"registry stored blob {digest} as {claimed}")
        return "uploaded"

    def put_manifest(self, repo: str, reference: str, media_type: str, data: bytes) -> str:
        """Store a manifest under a tag (or its digest); returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scope=push_scope(repo),
            headers={"Content-Type": media_type, "Content-Length": str(len(data))},
            body=data,
        )
        if resp.status not in (200, 201):
            raise self._failure(resp, f"manifest {reference}")
        claimed = resp.header("Docker-Content-Digest")
        resp.drain()
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise DigestMismatch(f"registry stored manifest {digest} as {claimed}")
        return digest


def _basic_auth(credentials: tuple[str, str]) -> str:
    user, password = credentials
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class BlobReader:
    """A blob download as a stream: counts bytes against the descriptor's size (more is an
    error at once, less at the end), and resumes a cut transfer with ``Range``."""

    def __init__(
        self,
        client: RegistryClient,
        repo: str,
        digest: str,
        size: int,
        on_read: Callable[[int], None] | None,
        cancelled: threading.Event | None,
    ) -> None:
        self.client = client
        self.repo = repo
        self.digest = digest
        self.size = size
        self.offset = 0
        self.on_read = on_read
        self.cancelled = cancelled
        self._resp: Response | None = client._blob_response(repo, digest, 0)
        self._resumes = 0

    def read(self, n: int = -1) -> bytes:
        if self.cancelled is not None and self.cancelled.is_set():
            raise Cancelled("cancelled")
        left = self.size - self.offset
        if left == 0:
            self._finish()
            return b""
        want = left if n < 0 else min(n, left)
        while True:
            if self._resp is None:
                self._resp = self.client._blob_response(self.repo, self.digest, self.offset)
            try:
                data = self._resp.read(want)
            except (OSError, http.client.HTTPException) as exc:
                data = b""
                error: str = error_reason(exc)
            else:
                error = "connection closed early"
            if data:
                break
            self._resp.close()
            self._resp = None
            self._resumes += 1
            if self._resumes > RESUMES:
                raise DigestMismatch(
                    f"blob {self.digest}: got {self.offset} of {self.size} bytes ({error})"
                )
        self.offset += len(data)
        if self.on_read is not None:
            self.on_read(len(data))
        return data

    def _finish(self) -> None:
        """At the descriptor's size: the server must have nothing more to send."""
        if self._resp is None:
            return
        resp, self._resp = self._resp, None
        try:
            extra = resp.read(1)
        except (OSError, http.client.HTTPException):
            extra = b""
        resp.close()
        if extra:
            raise DigestMismatch(
                f"blob {self.digest} is larger than the {self.size} bytes expected"
            )

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
