"""Resolve ``user[:group]`` against the container's own /etc/passwd and /etc/group.

Never the host's NSS: the files are read from inside the container (after pivot_root), through
openat2 with magic links refused, and parsed here. Numeric ids need no files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtime.errors import SetupError
from runtime.linux import syscalls as sc

MAX_FILE = 4 * 1024 * 1024


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


def _read(path: str) -> list[list[str]]:
    try:
        fd = sc.openat2(-100, path, os.O_RDONLY, 0, sc.RESOLVE_NO_MAGICLINKS)
    except OSError:
        return []
    try:
        data = os.read(fd, MAX_FILE)
    finally:
        os.close(fd)
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _id(value: str) -> int | None:
    if value.isdigit():
        number = int(value)
        if number < 2**32 - 1:
            return number
    return None


def resolve(spec: str, passwd: str = "/etc/passwd", group: str = "/etc/group") -> ResolvedUser:
    """``spec`` is ``user``, ``uid``, ``user:group``, ``uid:gid`` (Docker's --user syntax)."""
    user_part, _, group_part = spec.partition(":")
    if not user_part:
        raise SetupError(f"user {spec!r}: empty user name")
    users = _read(passwd)
    uid = _id(user_part)
    gid: int | None = None
    home = "/"
    name = user_part
    for row in users:
        if len(row) < 7:
            continue
        if (uid is None and row[0] == user_part) or (uid is not None and _id(row[2]) == uid):
            row_uid, row_gid = _id(row[2]), _id(row[3])
            if row_uid is None or row_gid is None:
                continue
            uid, gid, home, name = row_uid, row_gid, row[5] or "/", row[0]
            break
    if uid is None:
        raise SetupError(f"unable to find user {user_part}: no matching entries in passwd file")
    groups = _read(group)
    if group_part:
        gid = _id(group_part)
        if gid is None:
            for row in groups:
                if len(row) >= 3 and row[0] == group_part and _id(row[2]) is not None:
                    gid = _id(row[2])
                    break
            else:
                raise SetupError(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
    if gid is None:
        gid = 0  # a uid absent from passwd gets group 0, as runc and Docker do
    extra = []
    if not group_part:
        for row in groups:
            if len(row) >= 4 and name in row[3].split(","):
                g = _id(row[2])
                if g is not None and g != gid:
                    extra.append(g)
    return ResolvedUser(uid, gid, tuple(extra), home)
