"""The export's window on this machine's files (:class:`~orchestrator.kube.base.Sources`): the
only part of :mod:`orchestrator.kube` that reads the host. Files larger than a ConfigMap holds
are refused before they are read."""

from __future__ import annotations

import errno
import os
import stat

from orchestrator.kube.base import MAX_OBJECT_BYTES


class HostFiles:
    def read(self, path: str) -> bytes:
        # O_NONBLOCK: a FIFO must not hang the export; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "Not a regular file", path)
            return f.read(MAX_OBJECT_BYTES + 1)

    def listdir(self, path: str) -> list[str] | None:
        if not os.path.isdir(path):
            return None
        return sorted(os.listdir(path))

    def executable(self, path: str) -> bool:
        try:
            return bool(os.stat(path).st_mode & stat.S_IXUSR)
        except OSError:
            return False
