"""Phase timestamps for the start path, off unless ORCHESTRATOR_TRACE names a file.

``mark("label")`` appends ``pid label monotonic_ns`` to that file; the descriptor is opened once
and inherited across the forks, so the container init can still write after pivot_root.
``bench/`` reads the file to print where the milliseconds of a start go.
"""

from __future__ import annotations

import os
import time

_fd: int | None = None


def configure(path: str | None) -> None:
    """Trace to ``path`` from now on (None: not at all); a warm worker (runtime.zygote) takes
    its caller's setting this way."""
    global _fd
    _fd = None
    if path:
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


configure(os.environ.get("ORCHESTRATOR_TRACE"))


def mark(label: str) -> None:
    if _fd is not None:
        os.write(_fd, f"{os.getpid()} {label} {time.monotonic_ns()}\n".encode())
