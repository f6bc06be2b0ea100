"""Writing the image store's files durably: after a crash a file has its old content or its
new one, never part of either, and what the state file names is on disk before it."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO

from runtime.image.model import InvalidImage
from runtime.image.tarstream import CHUNK

__all__ = ["atomic_write", "copy_hashed", "syncfs"]


def copy_hashed(stream: BinaryIO, dest: Path, limit: int | None, max_bytes: int) -> tuple[str, int]:
    """Copy ``stream`` to the new file ``dest``, synced, refusing more than ``limit`` bytes (or
    ``max_bytes`` without a limit); returns the digest and size of what was copied."""
    h = hashlib.sha256()
    size = 0
    cap = max_bytes if limit is None else limit
    with open(dest, "xb") as out:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise InvalidImage(f"blob is larger than {cap} bytes")
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return "sha256:" + h.hexdigest(), size


def atomic_write(path: Path, data: bytes, *, rename: bool = True) -> None:
    """Write ``path`` so that a crash leaves either the old or the new content."""
    if not rename:
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


_libc: ctypes.CDLL | None = None


def syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (the new layers) before the state names them."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            if err != errno.ENOSYS:
                raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
