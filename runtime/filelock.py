"""Advisory whole-file locks (flock) on a lock file: one writer at a time across processes.

The kernel drops the lock when its holder dies, so a crashed command never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def open_lock(path: str | os.PathLike[str]) -> int:
    """A descriptor of the lock file ``path`` (created, mode 0600), to flock."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` for the block (waiting for it if need be)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
