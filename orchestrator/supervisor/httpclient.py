"""The CLI's side of the supervisor's API (orchestrator.supervisor.http): blocking calls over
the unix socket, importing little, so that ``ps`` or ``stop`` costs little more than Python's
own start."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _short_address(path: Path) -> tuple[int, str]:
    """(dirfd, /proc/self/fd/N/name): connects whatever the length of the path."""
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return dirfd, f"/proc/self/fd/{dirfd}/{path.name}"


class Unreachable(Exception):
    pass


def _open(path: Path, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        dirfd, address = _short_address(path)
    except FileNotFoundError:
        sock.close()
        raise Unreachable(str(path)) from None
    try:
        sock.connect(address)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise Unreachable(str(exc)) from None
    finally:
        os.close(dirfd)
    return sock


def _send(sock: socket.socket, method: str, target: str, body: Any) -> None:
    payload = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: supervisor\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    sock.sendall(head + payload)


def _read_head(reader: Any) -> int:
    status_line = reader.readline()
    if not status_line:
        raise Unreachable("the supervisor closed the connection")
    status = int(status_line.split()[1])
    while reader.readline() not in (b"\r\n", b"\n", b""):
        pass
    return status


def call(
    path: Path, method: str, target: str, body: Any = None, timeout: float | None = 60
) -> tuple[int, Any]:
    """One request, one JSON answer: (status, document)."""
    sock = _open(path, timeout)
    try:
        _send(sock, method, target, body)
        with sock.makefile("rb") as reader:
            status = _read_head(reader)
            data = reader.read()
    finally:
        sock.close()
    return status, json.loads(data) if data.strip() else None


def stream(path: Path, method: str, target: str, body: Any = None) -> Iterator[tuple[int, Any]]:
    """A request whose answer is a stream of JSON lines: (status, each document)."""
    sock = _open(path, None)
    try:
        _send(sock, method, target, body)
        with sock.makefile("rb") as reader:
            status = _read_head(reader)
            for line in reader:
                if line.strip():
                    yield status, json.loads(line)
    finally:
        sock.close()
