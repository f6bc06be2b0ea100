"""Line-delimited JSON messages over a pipe, between the caller, the monitor and the init."""

from __future__ import annotations

import json
import os
from typing import Any


class Channel:
    """One direction of a pipe carrying one JSON object per line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def send(self, **message: Any) -> None:
        data = json.dumps(message).encode() + b"\n"
        while data:
            written = os.write(self.fd, data)
            data = data[written:]

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None at end of file (the writer is gone)."""
        while b"\n" not in self._buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("malformed message")
        return message

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def pipe_pair() -> tuple[Channel, Channel]:
    """(reader, writer) over a fresh close-on-exec pipe."""
    r, w = os.pipe2(os.O_CLOEXEC)
    return Channel(r), Channel(w)
