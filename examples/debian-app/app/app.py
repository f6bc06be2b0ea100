"""The web app: counts hits in redis, by its service name, speaking RESP over a socket.

Standard library only (http.server): builds have no network, so nothing is installed with pip.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

REDIS = (os.environ.get("REDIS_HOST", "redis"), int(os.environ.get("REDIS_PORT", "6379")))
PORT = int(os.environ.get("PORT", "8000"))


class RedisError(Exception):
    pass


def redis(*args: str) -> Any:
    """One command on a fresh connection (the name is looked up each time: a recreated redis
    may have a new address)."""
    parts = [a.encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(REDIS, timeout=2) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as reply:
            return _reply(reply)


def _reply(f: BinaryIO) -> Any:
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RedisError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else f.read(size + 2)[:-2].decode()
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_reply(f) for _ in range(count)]
    raise RedisError(f"unexpected reply {line!r}")


class Handler(BaseHTTPRequestHandler):
    server_version = "debian-app/1"

    def do_GET(self) -> None:  # http.server calls do_<METHOD>
        if self.path == "/healthz":
            self._send(200, "text/plain", "ok\n")
            return
        if self.path not in ("/", "/api/hits"):
            self._send(404, "text/plain", "not found\n")
            return
        try:
            hits = redis("INCR", "hits")
        except (OSError, RedisError) as exc:
            self._send(503, "text/plain", f"redis is not answering: {exc}\n")
            return
        host = socket.gethostname()
        if self.path == "/api/hits":
            self._send(200, "application/json", json.dumps({"hits": hits, "app": host}) + "\n")
            return
        page = (
            "<!doctype html><html><head><title>debian-app</title></head><body>"
            "<h1>debian-app</h1>"
            f"<p>This page has been seen <b id='hits'>{hits}</b> times.</p>"
            f"<p>Served by {host} behind nginx; the count lives in redis.</p>"
            "</body></html>\n"
        )
        self._send(200, "text/html; charset=utf-8", page)

    def _send(self, status: int, kind: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.path != "/healthz":
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    # PID 1 ignores signals it does not handle: without this, a stop waits for its SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    print(f"listening on :{PORT}, redis at {REDIS[0]}:{REDIS[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
