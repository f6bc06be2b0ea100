"""Registries for the tests: Debian's ``docker-registry`` on 127.0.0.1, and a small proxy in
front of it that can demand Bearer tokens, redirect, corrupt or cut blob downloads and count
requests. Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bcrypt_htpasswd(user: str, password: str) -> str:
    """An htpasswd line with a bcrypt hash (the only kind the registry accepts), via libcrypt."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, still the stdlib's way to libcrypt's bcrypt

    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    assert hashed and hashed.startswith("$2"), "libcrypt has no bcrypt"
    return f"{user}:{hashed}\n"


@dataclass
class Registry:
    """A running ``docker-registry``; ``domain`` is what references use (``127.0.0.1:PORT``)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_registry(workdir: Path, *, htpasswd: str | None = None) -> Registry:
    """Start a registry storing under ``workdir``; wait until it answers ``/v2/``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = ""
    if htpasswd is not None:
        (workdir / "htpasswd").write_text(htpasswd)
        auth = f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {workdir / 'htpasswd'}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    registry = Registry(port, proc, log)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            if status in (200, 401):
                return registry
        except OSError:
            pass
        if time.monotonic() > deadline:
            registry.stop()
            raise RuntimeError("docker-registry did not start within 15s")
        time.sleep(0.05)


# -- the proxy ------------------------------------------------------------------------------------


@dataclass
class ProxyConfig:
    upstream: int
    token_user: tuple[str, str] | None = None  # demand Bearer tokens issued for these credentials
    redirect_blobs_to: Proxy | None = None  # 307 blob GETs to this (other origin) proxy
    corrupt_blobs: bool = False  # flip one byte of every blob body (same length)
    cut_blobs: int = 0  # cut this many blob downloads halfway through
    canned: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, auth
    scopes: list[str] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Proxy:
    """An HTTP/1.1 proxy on 127.0.0.1 in a thread; ``url`` and ``domain`` name it."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        handler = type("Handler", (_Handler,), {"cfg": config, "proxy": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def count(self, method: str, contains: str = "") -> int:
        with self.config.lock:
            return sum(1 for m, p, _ in self.config.requests if m == method and contains in p)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cfg: ProxyConfig
    proxy: Proxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        cfg = self.cfg
        auth = self.headers.get("Authorization")
        with cfg.lock:
            cfg.requests.append((self.command, self.path, auth))
        length = int(self.headers.get("Content-Length") or 0)
        if self.path.startswith("/token"):
            self._token(auth)
            return
        if self.path in cfg.canned:
            self._reply(*cfg.canned[self.path])
            return
        if cfg.token_user is not None:
            token = auth[7:] if auth and auth.startswith("Bearer ") else None
            if token not in cfg.tokens:
                self.rfile.read(length)
                repo = self.path.split("/")[2] if self.path.count("/") > 3 else ""
                scope = f',scope="repository:{repo}:pull"' if repo else ""
                self._reply(
                    401,
                    {
                        "WWW-Authenticate": f'Bearer realm="http://{self.proxy.domain}/token",'
                        f'service="test-registry"{scope}',
                        "Content-Type": "application/json",
                    },
                    b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                )
                return
        is_blob_get = self.command == "GET" and "/blobs/sha256:" in self.path
        if is_blob_get and cfg.redirect_blobs_to is not None:
            self._reply(307, {"Location": f"http://{cfg.redirect_blobs_to.domain}{self.path}"})
            return
        self._forward(length, is_blob_get)

    def _token(self, auth: str | None) -> None:
        cfg = self.cfg
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        with cfg.lock:
            cfg.scopes += query.get("scope", [])
        if cfg.token_user is not None:
            user, password = cfg.token_user
            good = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if auth != good:
                self._reply(
                    401, {"Content-Type": "application/json"}, b'{"details":"bad credentials"}'
                )
                return
        token = secrets.token_hex(16)
        with cfg.lock:
            cfg.tokens.add(token)
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self._reply(200, {"Content-Type": "application/json"}, body)

    def _forward(self, length: int, is_blob_get: bool) -> None:
        cfg = self.cfg
        up = http.client.HTTPConnection("127.0.0.1", cfg.upstream, timeout=30)
        try:
            up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in HOP_BY_HOP or k.lower() == "authorization":
                    continue
                up.putheader(k, v)
            up.endheaders()
            left = length
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                up.send(chunk)
                left -= len(chunk)
            resp = up.getresponse()
            body = resp.read()
            headers = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            headers.pop("Content-Length", None)
            if is_blob_get and resp.status in (200, 206) and body:
                if cfg.corrupt_blobs:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                with cfg.lock:
                    cut = cfg.cut_blobs > 0 and resp.status == 200 and len(body) > 1
                    if cut:
                        cfg.cut_blobs -= 1
                if cut:
                    self.send_response(resp.status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
            self._reply(resp.status, headers, body)
        finally:
            up.close()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (for read timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conns.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for c in conns:
            c.close()
        sock.close()


def run_quietly(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def pids_of(binary: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe") == binary:
                    out.append(int(entry))
            except OSError:
                pass
    return out
