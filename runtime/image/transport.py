"""HTTP for registries: keep-alive connections per origin, sending again what may be sent again.

Registries on ``localhost`` or a loopback address are spoken to in plain HTTP, every other one in
HTTPS with the stdlib's default certificate checks (``registry.registry_origin`` decides which).
Connecting (name resolution included) is bounded by ``connect_timeout`` so that an unreachable
registry fails fast; reads by ``read_timeout``.

Which requests are sent again is decided here, and only here:
  - a request on a reused keep-alive connection that turns out to be closed (servers close idle
    ones when they like) is sent once more on a new connection, whatever its method;
  - GET and HEAD are retried on 429/502/503/504 and follow redirects (blob downloads are often
    redirected to other storage); other methods never are.
A blob download cut in the middle is resumed with ``Range`` by ``registry.BlobReader``.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from runtime.errors import Error

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_ERROR_BODY",
    "READ_TIMEOUT",
    "USER_AGENT",
    "Body",
    "Cancelled",
    "Origin",
    "RegistryError",
    "Response",
    "Transport",
    "Unreachable",
    "add_query",
    "error_reason",
    "split_url",
]

MAX_ERROR_BODY = 64 << 10
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
MAX_REDIRECTS = 5
GET_RETRIES = 2
BLOCK = 1 << 20
USER_AGENT = "orchestrator/0.1 (python http.client)"
_REDIRECTS = (301, 302, 303, 307, 308)
_TRANSIENT = (429, 502, 503, 504)
_CLOSED = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


# -- errors -----------------------------------------------------------------------------------------


class RegistryError(Error):
    """A registry refused or failed a request; the message is one line for people."""


class Unreachable(RegistryError):
    """The registry (or its token server) cannot be connected to, or did not answer in time."""


class Cancelled(RegistryError):
    """A transfer stopped because another one of the same pull or push failed."""


# -- origins and URLs -------------------------------------------------------------------------------


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


def split_url(url: str) -> tuple[Origin, str]:
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


def add_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(params)


# -- connections and responses -----------------------------------------------------------------


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
                    f"TLS handshake with {self.origin.netloc} failed: {error_reason(exc)}"
                ) from None
        sock.settimeout(self.read_timeout)
        self.sock = sock


def error_reason(exc: BaseException) -> str:
    """A few words for a socket, TLS or HTTP error, for messages."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Response:
    """A response whose body is read by the caller; the connection goes back to the transport's
    idle ones once the body is fully read, or is closed."""

    def __init__(
        self,
        transport: Transport,
        conn: _Connection,
        raw: http.client.HTTPResponse,
        url: str,
        request_headers: dict[str, str],
    ) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._raw = raw
        self.url = url
        self.origin = conn.origin
        self.request_headers = request_headers
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
        self._transport.received(len(data))
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
            self._transport.release(conn)
        else:
            self._raw.close()
            conn.close()


class Transport:
    """Idle keep-alive connections per origin, shared by threads, and the requests sent on them.

    ``statistics()`` counts requests per method, connections opened and bytes each way.
    """

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._methods: dict[str, int] = {}
        self._stats: dict[str, int] = {"connections": 0, "bytes_received": 0, "bytes_sent": 0}

    def statistics(self) -> dict[str, int]:
        with self._lock:
            return {**self._methods, **self._stats}

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
            self._stats["connections"] += 1
        tls = self._context() if origin.scheme == "https" else None
        return _Connection(origin, self.connect_timeout, self.read_timeout, tls), False

    def release(self, conn: _Connection) -> None:
        with self._lock:
            self._idle.setdefault(conn.origin, []).append(conn)

    def received(self, n: int) -> None:
        with self._lock:
            self._stats["bytes_received"] += n

    def sent(self, n: int) -> None:
        with self._lock:
            self._stats["bytes_sent"] += n

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
        headers: Callable[[Origin], dict[str, str]],
        body: bytes | Body | None = None,
        *,
        unauthorized: Callable[[Response], bool] | None = None,
    ) -> Response:
        """``send``, following redirects and retrying transient answers for GET and HEAD.

        ``headers`` gives the headers for each origin the request goes to (credentials are for
        the registry's own origin only). ``unauthorized`` is shown each 401: true sends the
        request again (credentials were renewed), false returns the 401.
        """
        redirects = retries = 0
        idempotent = method in ("GET", "HEAD")
        while True:
            origin, _ = split_url(url)
            resp = self.send(method, url, headers(origin), body)
            if resp.status == 401 and unauthorized is not None and unauthorized(resp):
                continue
            if resp.status in _REDIRECTS and idempotent:
                location = resp.header("Location")
                resp.drain()
                redirects += 1
                if not location or redirects > MAX_REDIRECTS:
                    raise RegistryError(f"too many redirects or no Location from {url[:200]}")
                url = urllib.parse.urljoin(url, location)
                continue
            if resp.status in _TRANSIENT and idempotent and retries < GET_RETRIES:
                delay = _retry_after(resp.header("Retry-After"), retries)
                resp.drain()
                retries += 1
                time.sleep(delay)
                continue
            return resp

    def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | Body | None = None,
    ) -> Response:
        """One request, no redirects or auth. A reused connection the server had closed is
        replaced and the request sent again (the body is rewound)."""
        origin, target = split_url(url)
        with self._lock:
            self._methods[method] = self._methods.get(method, 0) + 1
        for attempt in range(2):
            conn, reused = self.acquire(origin)
            if isinstance(body, Body):
                body.rewind()
            try:
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
            except _CLOSED as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # the server closed it while it was idle: try a new one
                raise Unreachable(
                    f"{origin.netloc} closed the connection: {error_reason(exc)}"
                ) from None
            except OSError as exc:
                conn.close()
                raise self._unreachable(origin, exc) from None
            except BaseException:
                conn.close()
                raise
            if isinstance(body, bytes):
                self.sent(len(body))
            elif isinstance(body, Body):
                self.sent(body.sent)
            return Response(self, conn, raw, url, headers)
        raise AssertionError("unreachable")

    def _unreachable(self, origin: Origin, exc: OSError) -> Unreachable:
        if isinstance(exc, TimeoutError):
            return Unreachable(f"{origin.netloc} did not answer within {self.read_timeout:g}s")
        if isinstance(exc, ssl.SSLError):
            return Unreachable(f"TLS error with {origin.netloc}: {error_reason(exc)}")
        return Unreachable(f"{origin.netloc}: {error_reason(exc)}")


class Body:
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


def _retry_after(value: str | None, attempt: int) -> float:
    if value and value.isdigit():
        return min(float(value), 5.0)
    return 0.25 * (1 << attempt)
