"""Faults of the host the supervisor runs through rather than dies of (a full disk, a file it
cannot read or write): each said in one line for the log, the API and ``ps``."""

from __future__ import annotations

import errno
import sqlite3

# errnos that say the host, not the request, is at fault: reported as such, no traceback
HOST_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EMFILE, errno.ENFILE}


def is_host_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of the host (disk, database, descriptors), not a bug."""
    if isinstance(exc, OSError):
        return exc.errno in HOST_ERRNOS
    return isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError)


def describe(exc: BaseException) -> str:
    """One line for people: what failed, and where when the error says so."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, sqlite3.Error):
        return f"the supervisor's database: {exc}"
    return str(exc) or type(exc).__name__
