"""Which cgroup version a root is: 2 for a pure cgroup2 mount, 1 for v1 and hybrid layouts.

    detect_version("/sys/fs/cgroup")   # -> 1 on a hybrid host, 2 on a pure v2 host

A mounted root is judged by its filesystem type in /proc/self/mountinfo: ``cgroup2`` is v2;
anything else (the tmpfs that holds v1 hierarchies and, on hybrid hosts, a ``unified`` cgroup2
hierarchy with few or no controllers) is v1. A root that is not a mount point (a tree laid out
by a test) is v2 when it holds ``cgroup.controllers``, like a cgroup2 root, and v1 otherwise.
"""

from __future__ import annotations

import os

MOUNTINFO = "/proc/self/mountinfo"


def detect_version(root: str = "/sys/fs/cgroup", *, mountinfo: str = MOUNTINFO) -> int:
    fstype = mount_type(os.path.realpath(root), mountinfo)
    if fstype is not None:
        return 2 if fstype == "cgroup2" else 1
    return 2 if os.path.isfile(os.path.join(root, "cgroup.controllers")) else 1


def mount_type(path: str, mountinfo: str = MOUNTINFO) -> str | None:
    """The filesystem type mounted at exactly ``path`` (the last mount wins), or None."""
    found = None
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        if _unescape(fields[4]) != path:
            continue
        found = fields[fields.index("-", 6) + 1]
    return found


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
