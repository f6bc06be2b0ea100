"""Phase timestamps for the start path, off unless ORCHESTRATOR_TRACE names a file.

``mark("label")`` appends ``pid label monotonic_ns`` to that file; the descriptor is opened once
and inherited across the forks, so the container init can still write after pivot_root.
``bench/`` reads the file to print where the milliseconds of a start go.
"""

from __future__ import annotations

import os
import time

_fd: int | None = None
_path = os.environ.get("ORCHESTRATOR_TRACE")
if _path:
    _fd = os.open(_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def mark(label: str) -> None:
    if _fd is not None:
        os.write(_fd, f"{os.getpid()} {label} {time.monotonic_ns()}\n".encode())
