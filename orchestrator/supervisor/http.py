"""HTTP/1.1 with JSON bodies over a unix socket: the supervisor's server (trio) and the CLI's
client (plain sockets, nothing heavy imported). One request per connection.

A response is either one JSON document (``Content-Length``) or a stream of JSON lines ended by
closing the connection (``up``'s progress, ``events``): ``curl --unix-socket`` reads both.
The client is in ``httpclient`` (it imports nothing of this).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Server Error"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or None


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _short_address(path: Path) -> tuple[int, str]:
    """(dirfd, /proc/self/fd/N/name): binds and connects whatever the length of the path."""
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return dirfd, f"/proc/self/fd/{dirfd}/{path.name}"


# -- server (trio) ----------------------------------------------------------------------------


@dataclass
class Responder:
    stream: Any  # trio.SocketStream
    started: bool = False

    async def json(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode() + b"\n"
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.started = True
        await self.stream.send_all(head + body)

    async def begin_stream(self, status: int = 200) -> None:
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
            "Content-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
        ).encode()
        self.started = True
        await self.stream.send_all(head)

    async def line(self, document: Any) -> None:
        await self.stream.send_all(json.dumps(document).encode() + b"\n")

    async def until_closed(self) -> None:
        """Return once the client has closed the connection (or half-closed it: HTTP/1.1
        clients send nothing after their request, so either means it is done listening)."""
        import trio

        try:
            while await self.stream.receive_some(4096):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


Handler = Callable[[Request, Responder], Awaitable[None]]


async def serve(path: Path, handler: Handler, *, task_status: Any) -> None:
    import trio

    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    dirfd, address = _short_address(path)
    try:
        await listener.bind(address)
    finally:
        os.close(dirfd)
    os.chmod(path, 0o600)
    listener.listen(128)
    task_status.started()
    try:
        async with trio.open_nursery() as nursery:
            while True:
                sock, _ = await listener.accept()
                nursery.start_soon(_connection, trio.SocketStream(sock), handler)
    finally:
        listener.close()
        try:
            path.unlink()
        except FileNotFoundError:
            pass


async def _connection(stream: Any, handler: Handler) -> None:
    import trio

    responder = Responder(stream)
    try:
        try:
            with trio.fail_after(30):
                request = await _read_request(stream)
        except trio.TooSlowError:
            return
        try:
            await handler(request, responder)
        except HttpError as exc:
            if not responder.started:
                await responder.json(exc.status, {"error": exc.message})
            else:
                await responder.line({"error": exc.message})
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        pass  # the client went away mid-answer: its loss, not ours
    finally:
        with trio.move_on_after(1):
            await stream.aclose()


async def _read_request(stream: Any) -> Request:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise HttpError(400, "truncated request")
        data += chunk
        if len(data) > MAX_HEAD + MAX_BODY:
            raise HttpError(400, "request too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise HttpError(400, "bad request line") from None
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise HttpError(400, "request body too large")
    while len(rest) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise HttpError(400, "truncated body")
        rest += chunk
    body = None
    if length:
        try:
            body = json.loads(rest[:length])
        except ValueError:
            raise HttpError(400, "the body is not JSON") from None
    url = urlsplit(target)
    return Request(method.upper(), url.path, parse_qs(url.query), headers, body)
