"""A client for the OCI distribution API: pull images into the store, push them out.

    creds = Credentials.load(state_root)
    result = pull(store, "localhost:5000/busybox:1", credentials=creds)
    result.image.id, result.digest
    push(store, "localhost:5000/busybox:1", credentials=creds)

Transport: ``http.client`` with a small pool of keep-alive connections per origin. Registries on
``localhost`` or a loopback address are spoken to in plain HTTP, every other one in HTTPS with the
stdlib's default certificate checks. Connecting (name resolution included) is bounded by
``connect_timeout`` so an unreachable registry fails fast; reads by ``read_timeout``.

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` sends the stored
credentials; ``Bearer realm=...,service=...,scope=...`` fetches a token from the realm (with the
credentials, if any) for the repository and actions needed, caches it until it expires and
retries once. Credentials are never sent to another origin (a redirect to blob storage, say).

Safety:
  - manifests and blobs are verified against their digests (a manifest fetched by tag against the
    registry's ``Docker-Content-Digest``), and blob sizes against their descriptors; blobs stream
    to disk through ``ImageStore.ingest_blob``, never whole in memory;
  - GET and HEAD are retried on 429/502/503/504 and a cut blob download resumes with ``Range``;
    other requests are only resent when a reused keep-alive connection turned out to be closed;
  - redirects are followed for GET and HEAD only (blob downloads are often redirected).

A failed pull registers nothing in the store; blobs it had already downloaded stay (unreferenced)
so that the next attempt does not fetch them again, and ``image prune`` removes them.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import ipaddress
import json
import os
import platform as _platform
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from runtime.errors import Error
from runtime.image.digest import (
    DEFAULT_DOMAIN,
    Reference,
    parse_reference,
    parse_tagged,
    short_id,
    validate_digest,
)
from runtime.image.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
)

if TYPE_CHECKING:
    from runtime.image.auth import Credentials
    from runtime.image.store import ImageStore

__all__ = [
    "AuthenticationError",
    "DigestMismatch",
    "ManifestUnknown",
    "NullProgress",
    "Progress",
    "PullResult",
    "PushResult",
    "RegistryClient",
    "RegistryError",
    "Unreachable",
    "UnsupportedMediaType",
    "host_platform",
    "pull",
    "push",
    "select_platform",
]

MANIFEST_ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
MAX_MANIFEST = 4 << 20
MAX_ERROR_BODY = 64 << 10
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
MAX_REDIRECTS = 5
GET_RETRIES = 2
RESUMES = 3
BLOCK = 1 << 20
MAX_WORKERS = 3
HUB_REGISTRY = "registry-1.docker.io"
USER_AGENT = "orchestrator/0.1 (python http.client)"
_REDIRECTS = (301, 302, 303, 307, 308)
_TRANSIENT = (429, 502, 503, 504)
_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)


# -- errors -----------------------------------------------------------------------------------------


class RegistryError(Error):
    """A registry refused or failed a request; the message is one line for people."""


class Unreachable(RegistryError):
    """The registry (or its token server) cannot be connected to, or did not answer in time."""


class AuthenticationError(RegistryError):
    """Credentials are missing, wrong, or do not grant the access needed."""


class ManifestUnknown(RegistryError):
    """No such repository, tag or digest in the registry."""


class DigestMismatch(RegistryError):
    """Content did not match its digest or its size."""


class UnsupportedMediaType(RegistryError):
    """A manifest or layer type we do not handle (schema 1, an unknown layer type...)."""


class Cancelled(RegistryError):
    """A transfer stopped because another one of the same pull or push failed."""


def _in_context(exc: Error, prefix: str) -> RegistryError:
    kind = type(exc) if isinstance(exc, RegistryError) else RegistryError
    return kind(f"{prefix}: {exc}")


# -- progress ---------------------------------------------------------------------------------------


class Progress(Protocol):
    """Where pull and push report what they do; calls may come from several threads."""

    def start(self, key: str, action: str, total: int | None) -> None: ...

    def advance(self, key: str, n: int) -> None: ...

    def finish(self, key: str, status: str) -> None: ...


class NullProgress:
    def start(self, key: str, action: str, total: int | None) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        pass


# -- endpoints and platforms ------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


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


def _split_url(url: str) -> tuple[Origin, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"unsupported URL {url[:200]!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RegistryError(f"invalid port in URL {url[:200]!r}") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Origin(parts.scheme, parts.hostname, port), target


def _add_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(params)


def host_platform() -> tuple[str, str, str | None]:
    """(os, architecture, variant) of this machine in OCI terms, from ``platform.machine()``."""
    machine = _platform.machine().lower()
    arch, variant = {
        "x86_64": ("amd64", None),
        "amd64": ("amd64", None),
        "aarch64": ("arm64", "v8"),
        "arm64": ("arm64", "v8"),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i686": ("386", None),
        "i386": ("386", None),
        "ppc64le": ("ppc64le", None),
        "s390x": ("s390x", None),
        "riscv64": ("riscv64", None),
    }.get(machine, (machine, None))
    return "linux", arch, variant


def select_platform(index: dict[str, Any], want: tuple[str, str, str | None]) -> dict[str, Any]:
    """The descriptor of ``index`` for platform ``want``: an exact variant first, then one with no
    variant, then any variant (arm64 images often omit ``v8``)."""
    os_name, arch, variant = want
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise UnsupportedMediaType("image index has no manifests list")
    ranked: list[tuple[int, int, dict[str, Any]]] = []
    seen: list[str] = []
    for i, desc in enumerate(manifests):
        if not isinstance(desc, dict):
            continue
        plat = desc.get("platform")
        if not isinstance(plat, dict):
            continue
        seen.append(
            "/".join(
                str(p) for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p
            )
        )
        if plat.get("os") != os_name or plat.get("architecture") != arch:
            continue
        if desc.get("mediaType") not in (*MANIFEST_TYPES, *INDEX_TYPES):
            continue
        got = plat.get("variant")
        rank = 0 if got == variant else 1 if not got else 2
        ranked.append((rank, i, desc))
    if not ranked:
        wanted = "/".join(p for p in want if p)
        listed = ", ".join(sorted(set(seen))) or "none"
        raise UnsupportedMediaType(f"no image for {wanted} in the index (it has: {listed})")
    return min(ranked, key=lambda r: (r[0], r[1]))[2]


# -- HTTP -----------------------------------------------------------------------------------------


def _resolve(host: str, port: int, timeout: float) -> list[tuple[int, Any]]:
    """getaddrinfo bounded by ``timeout`` (the resolver has no timeout of its own)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, (host, port))]
    result: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=work, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise Unreachable(f"cannot resolve {host}: timed out after {timeout:g}s")
    if failure:
        exc = failure[0]
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Unreachable(f"cannot resolve {host}: {reason}")
    return [(info[0], info[4]) for info in result]


class _Connection(http.client.HTTPConnection):
    """One keep-alive connection; connects with a deadline, optionally TLS."""

    def __init__(
        self,
        origin: Origin,
        connect_timeout: float,
        read_timeout: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(origin.host, origin.port, timeout=read_timeout, blocksize=BLOCK)
        self.origin = origin
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.tls = tls

    def connect(self) -> None:
        deadline = time.monotonic() + self.connect_timeout
        addrs = _resolve(self.origin.host, self.origin.port, self.connect_timeout)
        last: OSError | None = None
        sock: socket.socket | None = None
        for family, addr in addrs:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            candidate = socket.socket(family, socket.SOCK_STREAM)
            candidate.settimeout(left)
            try:
                candidate.connect(addr)
            except OSError as exc:
                candidate.close()
                last = exc
                continue
            sock = candidate
            break
        if sock is None:
            if isinstance(last, TimeoutError) or last is None:
                reason = f"no connection within {self.connect_timeout:g}s"
            else:
                reason = last.strerror or str(last)
            raise Unreachable(f"cannot connect to {self.origin.netloc}: {reason}")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                sock.settimeout(max(deadline - time.monotonic(), 1.0))
                sock = self.tls.wrap_socket(sock, server_hostname=self.origin.host)
            except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
                sock.close()
                raise Unreachable(
                    f"TLS handshake with {self.origin.netloc} failed: {_reason(exc)}"
                ) from None
        sock.settimeout(self.read_timeout)
        self.sock = sock


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Response:
    """A response whose body is read by the caller; the connection goes back to the pool once
    the body is fully read, or is closed."""

    def __init__(self, pool: _Pool, conn: _Connection, raw: http.client.HTTPResponse, url: str):
        self._pool = pool
        self._conn: _Connection | None = conn
        self._raw = raw
        self.url = url
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return str(value) if value is not None else None

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n) if n >= 0 else self._raw.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        self._pool.received(len(data))
        if self._raw.isclosed():
            self.close()
        return data

    def read_all(self, limit: int, what: str) -> bytes:
        data = b""
        while len(data) <= limit:
            chunk = self.read(min(BLOCK, limit + 1 - len(data)))
            if not chunk:
                return data
            data += chunk
        self.close()
        raise RegistryError(f"{what} is larger than {limit} bytes")

    def drain(self) -> None:
        """Read a small body to its end so the connection can be reused; close otherwise."""
        if self._conn is not None and not self._raw.isclosed():
            remaining = self._raw.length  # None when unknown (chunked)
            if remaining is None or remaining <= MAX_ERROR_BODY:
                try:
                    self.read(MAX_ERROR_BODY + 1)
                except (OSError, http.client.HTTPException):
                    pass
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._raw.isclosed() and not self._raw.will_close:
            self._pool.release(conn)
        else:
            self._raw.close()
            conn.close()


class _Pool:
    """Idle keep-alive connections per origin, shared by threads."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self.stats: dict[str, int] = {"connections": 0, "bytes_received": 0, "bytes_sent": 0}

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return self._tls

    def acquire(self, origin: Origin) -> tuple[_Connection, bool]:
        with self._lock:
            idle = self._idle.get(origin)
            if idle:
                return idle.pop(), True
            self.stats["connections"] += 1
        tls = self._context() if origin.scheme == "https" else None
        return _Connection(origin, self.connect_timeout, self.read_timeout, tls), False

    def release(self, conn: _Connection) -> None:
        with self._lock:
            self._idle.setdefault(conn.origin, []).append(conn)

    def received(self, n: int) -> None:
        with self._lock:
            self.stats["bytes_received"] += n

    def sent(self, n: int) -> None:
        with self._lock:
            self.stats["bytes_sent"] += n

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | _Body | None,
    ) -> Response:
        """One request, no redirects or auth. A reused connection the server had closed is
        replaced and the request sent again (the body is rewound)."""
        origin, target = _split_url(url)
        for attempt in range(2):
            conn, reused = self.acquire(origin)
            if isinstance(body, _Body):
                body.rewind()
            try:
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                ConnectionAbortedError,
            ) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise Unreachable(
                    f"{origin.netloc} closed the connection: {_reason(exc)}"
                ) from None
            except TimeoutError:
                conn.close()
                raise Unreachable(
                    f"{origin.netloc} did not answer within {self.read_timeout:g}s"
                ) from None
            except ssl.SSLError as exc:
                conn.close()
                raise Unreachable(f"TLS error with {origin.netloc}: {_reason(exc)}") from None
            except OSError as exc:
                conn.close()
                raise Unreachable(f"{origin.netloc}: {_reason(exc)}") from None
            except BaseException:
                conn.close()
                raise
            if isinstance(body, bytes):
                self.sent(len(body))
            elif isinstance(body, _Body):
                self.sent(body.sent)
            return Response(self, conn, raw, url)
        raise AssertionError("unreachable")


class _Body:
    """``length`` bytes of ``source`` from ``offset``, for a request body; reports progress and
    can be rewound when the request must be sent again."""

    def __init__(
        self,
        source: BinaryIO,
        offset: int,
        length: int,
        on_read: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.offset = offset
        self.length = length
        self.sent = 0
        self.on_read = on_read
        self.cancelled = cancelled

    def rewind(self) -> None:
        if self.sent and self.on_read is not None:
            self.on_read(-self.sent)
        self.sent = 0
        self.source.seek(self.offset)

    def read(self, n: int = -1) -> bytes:
        if self.cancelled is not None and self.cancelled.is_set():
            raise Cancelled("cancelled")
        left = self.length - self.sent
        if n < 0 or n > left:
            n = left
        data = self.source.read(n) if n else b""
        if n and not data:
            raise RegistryError("blob in the store is shorter than its descriptor")
        self.sent += len(data)
        if self.on_read is not None and data:
            self.on_read(len(data))
        return data


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
        self._pool = _Pool(connect_timeout, read_timeout)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._tokens: dict[str, _Token] = {}
        self._basic = False

    @classmethod
    def for_domain(
        cls, domain: str, credentials: Credentials | None = None, **kw: Any
    ) -> RegistryClient:
        return cls(domain, credentials.get(domain) if credentials else None, **kw)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counts)
        out.update(self._pool.stats)
        out["requests"] = sum(v for k, v in out.items() if k.isupper())
        return out

    # -- requests, auth, redirects ------------------------------------------------------------

    def _count(self, method: str) -> None:
        with self._lock:
            self._counts[method] = self._counts.get(method, 0) + 1

    def _authorization(self, scope: str | None) -> str | None:
        with self._lock:
            token = self._tokens.get(scope or "")
            if token is not None and token.expires > time.monotonic():
                return f"Bearer {token.value}"
            basic = self._basic
        if basic and self.credentials:
            user, password = self.credentials
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return None

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str | None,
        headers: dict[str, str] | None = None,
        body: bytes | _Body | None = None,
    ) -> Response:
        """Send a request, answering one auth challenge, following redirects (GET and HEAD) and
        retrying transient failures (GET and HEAD). The caller reads or drains the response."""
        url = path_or_url if "://" in path_or_url else str(self.origin) + path_or_url
        challenged = redirects = retries = 0
        while True:
            origin, _ = _split_url(url)
            sent = {"User-Agent": USER_AGENT, **(headers or {})}
            auth = self._authorization(scope) if origin == self.origin else None
            if auth:
                sent["Authorization"] = auth
            if body is None and method in ("POST", "PUT", "PATCH"):
                sent.setdefault("Content-Length", "0")
            self._count(method)
            resp = self._pool.request(method, url, sent, body)
            if resp.status == 401 and origin == self.origin:
                challenge = resp.header("WWW-Authenticate") or ""
                resp.drain()
                if challenged or not self._answer(challenge, scope, had_auth=auth is not None):
                    raise self._denied(scope)
                challenged += 1
                continue
            if resp.status in _REDIRECTS and method in ("GET", "HEAD"):
                location = resp.header("Location")
                resp.drain()
                redirects += 1
                if not location or redirects > MAX_REDIRECTS:
                    raise RegistryError(f"too many redirects or no Location from {url[:200]}")
                url = urllib.parse.urljoin(url, location)
                continue
            if resp.status in _TRANSIENT and method in ("GET", "HEAD") and retries < GET_RETRIES:
                delay = _retry_after(resp.header("Retry-After"), retries)
                resp.drain()
                retries += 1
                time.sleep(delay)
                continue
            return resp

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
        origin, _ = _split_url(url)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.credentials:
            if origin.scheme != "https" and not is_local_host(origin.host):
                raise AuthenticationError(
                    f"token server {origin.netloc} is plain HTTP: refusing to send credentials"
                )
            user, password = self.credentials
            headers["Authorization"] = (
                "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            )
        self._count("GET")
        resp = self._pool.request("GET", url, headers, None)
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
                body = _Body(source, offset, n, on_read, cancelled)
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
            resp = self.request("PUT", _add_query(location, digest=digest), scope=scope)
        else:
            resp = self.request(
                "PUT",
                _add_query(location, digest=digest),
                scope=scope,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=_Body(source, 0, size, on_read, cancelled),
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


def _retry_after(value: str | None, attempt: int) -> float:
    if value and value.isdigit():
        return min(float(value), 5.0)
    return 0.25 * (1 << attempt)


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
                error: str = _reason(exc)
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


# -- pull and push ------------------------------------------------------------------------------


@dataclass
class PullResult:
    image: Image
    reference: Reference
    digest: str  # what the reference resolved to (an index digest for a multi-platform image)
    manifest_digest: str  # the manifest stored (this platform's)
    downloaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    bytes: int = 0


@dataclass
class PushResult:
    reference: Reference
    digest: str
    size: int
    uploaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    bytes: int = 0


def _descriptors(manifest: Manifest) -> list[dict[str, Any]]:
    """Config then layers, each digest and size checked; layer types we cannot use refused."""
    doc = manifest.json()
    config = doc.get("config")
    layers = doc.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise UnsupportedMediaType(f"manifest {manifest.digest} has no config or no layers")
    out = []
    for desc in [config, *layers]:
        if not isinstance(desc, dict):
            raise RegistryError(f"manifest {manifest.digest} has an invalid descriptor")
        validate_digest(desc.get("digest"))  # type: ignore[arg-type]
        size = desc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"manifest {manifest.digest} has a descriptor with no valid size")
        if desc is not config and desc.get("mediaType") not in LAYER_TYPES:
            raise UnsupportedMediaType(f"unsupported layer media type {desc.get('mediaType')!r}")
        out.append(desc)
    return out


def _run_parallel(
    items: Iterable[dict[str, Any]],
    work: Callable[[dict[str, Any], threading.Event], None],
    max_workers: int,
) -> None:
    """Run ``work`` on each item in threads; on the first failure the others are told to stop,
    and that first failure is raised once all have ended."""
    cancelled = threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers, "registry")
    first: BaseException | None = None
    try:
        futures = [pool.submit(work, item, cancelled) for item in items]
        for future in concurrent.futures.as_completed(futures):
            exc = future.exception()
            if exc is not None and first is None:
                first = exc
                cancelled.set()
    except BaseException:  # Ctrl-C: the workers stop at their next read or write
        cancelled.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if first is not None:
        raise first


def pull(
    store: ImageStore,
    reference: str,
    *,
    credentials: Credentials | None = None,
    progress: Progress | None = None,
    platform: tuple[str, str, str | None] | None = None,
    client: RegistryClient | None = None,
    max_workers: int = MAX_WORKERS,
) -> PullResult:
    """Pull ``NAME[:TAG|@DIGEST]`` into ``store`` and tag it (a digest reference is not tagged).

    An index (manifest list) resolves to ``platform`` (default: this machine). Blobs already in
    the store are not downloaded. Errors name the reference.
    """
    ref = parse_reference(reference)
    own = client is None
    try:
        if client is None:
            client = RegistryClient.for_domain(ref.domain, credentials)
        return _pull(store, ref, client, progress or NullProgress(), platform, max_workers)
    except Error as exc:
        raise _in_context(exc, f"cannot pull {ref.familiar}") from None
    finally:
        if own and client is not None:
            client.close()


def _pull(
    store: ImageStore,
    ref: Reference,
    client: RegistryClient,
    progress: Progress,
    platform: tuple[str, str, str | None] | None,
    max_workers: int,
) -> PullResult:
    repo = ref.path
    manifest = client.get_manifest(repo, ref.digest or ref.tag or "latest")
    top = manifest.digest
    for _ in range(2):  # an index may point at an index, once
        if manifest.media_type not in INDEX_TYPES:
            break
        desc = select_platform(manifest.json(), platform or host_platform())
        child = validate_digest(desc.get("digest"))  # type: ignore[arg-type]
        manifest = client.get_manifest(repo, child)
        if isinstance(desc.get("size"), int) and desc["size"] != len(manifest.data):
            raise DigestMismatch(f"manifest {child} is not the size the index says")
    if manifest.media_type not in MANIFEST_TYPES:
        raise UnsupportedMediaType(f"manifest {manifest.digest} is {manifest.media_type!r}")
    descs = list({d["digest"]: d for d in _descriptors(manifest)}.values())
    downloaded: list[str] = []
    existing: list[str] = []
    total = [0]
    lock = threading.Lock()

    def fetch(desc: dict[str, Any], cancelled: threading.Event) -> None:
        digest, size = desc["digest"], desc["size"]
        key = short_id(digest)
        if store.active_lease is not None:
            store.active_lease.add(digest)  # held before the check, kept until recorded
        if store.has_blob(digest):
            progress.finish(key, "Already exists")
            with lock:
                existing.append(digest)
            return
        progress.start(key, "Downloading", size)
        reader = client.open_blob(
            repo, digest, size, on_read=lambda n: progress.advance(key, n), cancelled=cancelled
        )
        try:
            store.ingest_blob(cast(BinaryIO, reader), expected_digest=digest, expected_size=size)
        except RegistryError as exc:
            progress.finish(key, "Cancelled" if isinstance(exc, Cancelled) else "Failed")
            raise
        except Error as exc:  # the store's own verification
            progress.finish(key, "Failed")
            text = str(exc)
            raise DigestMismatch(text if digest in text else f"blob {digest}: {text}") from None
        finally:
            reader.close()
        progress.finish(key, "Download complete")
        with lock:
            downloaded.append(digest)
            total[0] += size

    tags = [str(ref)] if ref.digest is None and ref.tag else []
    with store.lease():
        _run_parallel(descs, fetch, max_workers)
        image = store.add_manifest(manifest.data, tags)
    return PullResult(image, ref, top, manifest.digest, downloaded, existing, total[0])


def push(
    store: ImageStore,
    source: str,
    dest: str | None = None,
    *,
    credentials: Credentials | None = None,
    progress: Progress | None = None,
    client: RegistryClient | None = None,
    chunk_size: int | None = None,
    max_workers: int = MAX_WORKERS,
) -> PushResult:
    """Push the stored image ``source`` to ``dest`` (default: ``source``'s own name).

    Blobs the registry has (HEAD) are skipped; a blob this image also has under another
    repository of the same registry is mounted from there when the registry allows it.
    """
    target = parse_tagged(dest or source)
    own = client is None
    try:
        image = store.resolve(source)
        if dest is None and str(target) not in image.repo_tags:
            raise RegistryError(
                f"{source!r} is not a name of image {image.short_id}: "
                "give the destination (push SOURCE DEST)"
            )
        if client is None:
            client = RegistryClient.for_domain(target.domain, credentials)
        return _push(
            store, image, target, client, progress or NullProgress(), chunk_size, max_workers
        )
    except Error as exc:
        raise _in_context(exc, f"cannot push {target.familiar}") from None
    finally:
        if own and client is not None:
            client.close()


def _push(
    store: ImageStore,
    image: Image,
    target: Reference,
    client: RegistryClient,
    progress: Progress,
    chunk_size: int | None,
    max_workers: int,
) -> PushResult:
    repo = target.path
    media_type, data = store.manifest_of(image)
    manifest = Manifest(media_type, data, "sha256:" + hashlib.sha256(data).hexdigest())
    descs = list({d["digest"]: d for d in _descriptors(manifest)}.values())
    mount_from = _mount_source(image, target)
    result = PushResult(reference=target, digest=manifest.digest, size=len(data))
    lock = threading.Lock()
    scope = push_scope(repo)

    def send(desc: dict[str, Any], cancelled: threading.Event) -> None:
        digest, size = desc["digest"], desc["size"]
        key = short_id(digest)
        if cancelled.is_set():
            return
        if client.blob_size(repo, digest, scope=scope) is not None:
            progress.finish(key, "Layer already exists")
            with lock:
                result.existing.append(digest)
            return
        with store.open_blob(digest) as f:
            on_disk = _fstat_size(f)
            if on_disk != size:
                raise RegistryError(f"blob {digest} in the store is {on_disk} bytes, not {size}")
            progress.start(key, "Pushing", size)
            try:
                how = client.upload_blob(
                    repo,
                    digest,
                    size,
                    f,
                    chunk_size=chunk_size,
                    mount_from=mount_from,
                    on_read=lambda n: progress.advance(key, n),
                    cancelled=cancelled,
                )
            except Error as exc:
                progress.finish(key, "Cancelled" if isinstance(exc, Cancelled) else "Failed")
                raise
        progress.finish(key, f"Mounted from {mount_from}" if how == "mounted" else "Pushed")
        with lock:
            if how == "mounted":
                result.mounted.append(digest)
            else:
                result.uploaded.append(digest)
                result.bytes += size

    _run_parallel(descs, send, max_workers)
    tag = target.tag or "latest"
    result.digest = client.put_manifest(repo, tag, media_type, data)
    return result


def _fstat_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _mount_source(image: Image, target: Reference) -> str | None:
    """Another repository of the same registry this image is known under."""
    for tagged in image.repo_tags:
        try:
            ref = parse_reference(tagged)
        except Error:
            continue
        if ref.domain == target.domain and ref.path != target.path:
            return ref.path
    return None
