"""What ``stats`` shows of a cgroup, on either version: CPU time, memory (with the page cache
that Docker leaves out of "usage"), the memory and pids limits, and block I/O bytes.

    usage = read_usage(open_manager(container_id))

``Manager.stats()`` is the small snapshot the monitor needs (usage, peak, OOM kills); this
reads the rest, from the same directories, only when someone asks (``orchestrator stats``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtime.cgroups import _files
from runtime.cgroups.base import Manager
from runtime.cgroups.v1 import V1Manager
from runtime.cgroups.v2 import V2Manager

# v1 reports "no limit" as the largest page-aligned counter (PAGE_COUNTER_MAX pages): anything
# this big is no limit at all.
_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Usage:
    """A cgroup's usage; None where the controller or file is not there."""

    cpu_ns: int | None = None  # CPU time of every task so far
    memory: int | None = None  # bytes charged, page cache included
    memory_cache: int | None = None  # inactive file pages: what Docker subtracts from usage
    memory_limit: int | None = None  # None: no limit
    pids: int | None = None
    pids_limit: int | None = None  # None: no limit
    block_read: int | None = None  # bytes
    block_write: int | None = None

    @property
    def memory_used(self) -> int | None:
        """Docker's "MEM USAGE": the charge without the inactive page cache."""
        if self.memory is None:
            return None
        cache = self.memory_cache or 0
        return self.memory - cache if cache < self.memory else self.memory


def read_usage(manager: Manager) -> Usage:
    """The usage of ``manager``'s cgroup (a V1Manager's or a V2Manager's)."""
    if isinstance(manager, V2Manager):
        return _read_v2(manager.dir)
    if isinstance(manager, V1Manager):
        return _read_v1(manager.dirs)
    raise TypeError(f"no usage to read from {manager!r}")


def _read_v1(dirs: dict[str, str]) -> Usage:
    def file(subsystem: str, leaf: str) -> str | None:
        directory = dirs.get(subsystem)
        return os.path.join(directory, leaf) if directory else None

    def number(subsystem: str, leaf: str) -> int | None:
        path = file(subsystem, leaf)
        return _files.read_int(path) if path else None

    memory_stat = _keyed(file("memory", "memory.stat"))
    read, write = _v1_block_io(dirs.get("blkio"))
    return Usage(
        cpu_ns=number("cpuacct", "cpuacct.usage"),
        memory=number("memory", "memory.usage_in_bytes"),
        memory_cache=memory_stat.get("total_inactive_file"),
        memory_limit=_limit(number("memory", "memory.limit_in_bytes")),
        pids=number("pids", "pids.current"),
        pids_limit=_limit(number("pids", "pids.max")),
        block_read=read,
        block_write=write,
    )


def _v1_block_io(directory: str | None) -> tuple[int | None, int | None]:
    """Bytes read and written, from the throttle policy's counters (kept by every kernel,
    whatever the I/O scheduler), else the CFQ ones."""
    if directory is None:
        return None, None
    for leaf in (
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
        "blkio.io_service_bytes_recursive",
    ):
        text = _files.read_optional(os.path.join(directory, leaf))
        if text is None:
            continue
        read = write = 0
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[2].isdigit():
                if fields[1] == "Read":
                    read += int(fields[2])
                elif fields[1] == "Write":
                    write += int(fields[2])
        return read, write
    return None, None


def _read_v2(directory: str) -> Usage:
    def path(leaf: str) -> str:
        return os.path.join(directory, leaf)

    cpu = _keyed(path("cpu.stat"))
    usec = cpu.get("usage_usec")
    memory_stat = _keyed(path("memory.stat"))
    return Usage(
        cpu_ns=None if usec is None else usec * 1000,
        memory=_files.read_int(path("memory.current")),
        memory_cache=memory_stat.get("inactive_file"),
        memory_limit=_limit(_files.read_int(path("memory.max"))),
        pids=_files.read_int(path("pids.current")),
        pids_limit=_limit(_files.read_int(path("pids.max"))),
        **_v2_block_io(path("io.stat")),
    )


def _v2_block_io(path: str) -> dict[str, int | None]:
    text = _files.read_optional(path)
    if text is None:
        return {"block_read": None, "block_write": None}
    read = write = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if value.isdigit():
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
    return {"block_read": read, "block_write": write}


def _keyed(path: str | None) -> dict[str, int]:
    return (_files.read_keyed(path) or {}) if path else {}


def _limit(value: int | None) -> int | None:
    """A limit as read (``max`` reads as -1): None for no limit."""
    return None if value is None or value < 0 or value >= _UNLIMITED else value
