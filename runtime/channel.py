"""Line-delimited JSON messages between the caller, the monitor, its setup child and the init.

A channel over a socket (``socket_pair``) can also carry file descriptors (SCM_RIGHTS) with a
message: the init hands its terminal's master this way.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any


class Channel:
    """One direction of a pipe or socket carrying one JSON object per line."""

    def __init__(self, fd: int, is_socket: bool = False) -> None:
        self.fd = fd
        self.is_socket = is_socket
        self._buffer = b""
        self._fds: list[int] = []

    def send(self, *, fds: tuple[int, ...] = (), **message: Any) -> None:
        data = json.dumps(message).encode() + b"\n"
        if fds:
            sock = socket.socket(fileno=os.dup(self.fd))
            try:
                sent = socket.send_fds(sock, [data], list(fds))
            finally:
                sock.close()
            data = data[sent:]
        while data:
            written = os.write(self.fd, data)
            data = data[written:]

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None at end of file (the writer is gone)."""
        while b"\n" not in self._buffer:
            chunk = self._read()
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("malformed message")
        return message

    def take_fds(self) -> list[int]:
        """Descriptors that arrived with the messages read so far (ours to close)."""
        fds, self._fds = self._fds, []
        return fds

    def _read(self) -> bytes:
        if not self.is_socket:
            return os.read(self.fd, 65536)
        sock = socket.socket(fileno=os.dup(self.fd))
        try:
            data, fds, _, _ = socket.recv_fds(sock, 65536, 8, socket.MSG_CMSG_CLOEXEC)
        finally:
            sock.close()
        self._fds += fds
        return data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for fd in self.take_fds():
            os.close(fd)


def pipe_pair() -> tuple[Channel, Channel]:
    """(reader, writer) over a fresh close-on-exec pipe."""
    r, w = os.pipe2(os.O_CLOEXEC)
    return Channel(r), Channel(w)


def socket_pair() -> tuple[Channel, Channel]:
    """(reader, writer) over a socket pair: like ``pipe_pair``, and descriptors can travel."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    return Channel(a.detach(), is_socket=True), Channel(b.detach(), is_socket=True)
