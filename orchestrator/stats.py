"""Containers' resource usage, as ``docker stats`` shows it: CPU %, memory used / limit, memory
%, network I/O (the container's own interfaces), block I/O, PIDs.

    first = [sample(containers, c) for c in chosen]
    time.sleep(0.5)
    rows = [row(a, sample(containers, c)) for a, c in zip(first, chosen)]

CPU % needs two samples: the CPU time the cgroup used between them over the time between them
(100% is one CPU busy, as in Docker).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from runtime.cgroups.stats import Usage, read_usage

HEADER = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O")


@dataclass(frozen=True)
class Sample:
    id: str
    name: str
    at: float  # monotonic seconds
    usage: Usage | None  # None: not running
    net_rx: int = 0
    net_tx: int = 0


def sample(containers: Any, container: Any) -> Sample:
    """(blocking) The container's usage now; ``usage`` None when it does not run."""
    at = time.monotonic()
    status = containers.status(container)
    if status["state"] not in ("running", "paused") or not status["pid"]:
        return Sample(container.id, container.name, at, None)
    try:
        usage = read_usage(containers.runtime._cgroup(container.id))
    except Exception:  # (it ended between the two reads)
        return Sample(container.id, container.name, at, None)
    rx = tx = 0
    if container.options.network != "host":  # (the host's interfaces are not its own)
        rx, tx = net_io(int(status["pid"]))
    return Sample(container.id, container.name, at, usage, rx, tx)


def net_io(pid: int, proc: str = "/proc") -> tuple[int, int]:
    """Bytes received and sent on the interfaces of ``pid``'s network namespace, but lo."""
    try:
        with open(f"{proc}/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    rx = tx = 0
    for line in lines:
        name, _, data = line.partition(":")
        fields = data.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def host_memory(proc: str = "/proc") -> int:
    """The host's memory: the limit shown for a container without one (Docker's)."""
    with open(f"{proc}/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def row(before: Sample, after: Sample, memory_total: int) -> dict[str, Any]:
    """The numbers of one container between two samples; Docker's strings too (its
    ``--format json`` keys), zeros for a container that does not run."""
    usage = after.usage or Usage()
    cpu = 0.0
    if before.usage and after.usage and before.usage.cpu_ns is not None:
        elapsed = after.at - before.at
        spent = (after.usage.cpu_ns or 0) - before.usage.cpu_ns
        cpu = max(spent, 0) / 1e9 / elapsed * 100 if elapsed > 0 else 0.0
    used = usage.memory_used or 0
    limit = usage.memory_limit
    limit = memory_total if limit is None or limit > memory_total else limit
    memory_percent = used / limit * 100 if limit else 0.0
    read, write = usage.block_read or 0, usage.block_write or 0
    return {
        "id": after.id,
        "name": after.name,
        "running": after.usage is not None,
        "cpu_percent": round(cpu, 2),
        "memory_usage": used,
        "memory_limit": limit,
        "memory_percent": round(memory_percent, 2),
        "net_rx": after.net_rx,
        "net_tx": after.net_tx,
        "block_read": read,
        "block_write": write,
        "pids": usage.pids or 0,
        # Docker's strings
        "ID": after.id[:12],
        "Container": after.name,
        "Name": after.name,
        "CPUPerc": f"{cpu:.2f}%",
        "MemUsage": f"{binary_size(used)} / {binary_size(limit)}",
        "MemPerc": f"{memory_percent:.2f}%",
        "NetIO": f"{decimal_size(after.net_rx)} / {decimal_size(after.net_tx)}",
        "BlockIO": f"{decimal_size(read)} / {decimal_size(write)}",
        "PIDs": str(usage.pids or 0),
    }


def collect(containers: Any, chosen: list[Any], interval: float) -> list[dict[str, Any]]:
    """(blocking) Rows for ``chosen``, CPU measured over ``interval`` seconds."""
    first = [sample(containers, c) for c in chosen]
    time.sleep(interval)
    total = host_memory()
    return [row(a, sample(containers, c), total) for a, c in zip(first, chosen, strict=True)]


def render(rows: list[dict[str, Any]], full_ids: bool = False, fmt: str = "table") -> str:
    if fmt == "json":  # Docker's keys (strings), and the numbers they are made of
        return "".join(json.dumps(r | ({"ID": r["id"]} if full_ids else {})) + "\n" for r in rows)
    table = [[*HEADER, "PIDS"]]
    for r in rows:
        table.append(
            [
                r["id"] if full_ids else r["ID"],
                r["Name"],
                r["CPUPerc"] if r["running"] else "--",
                r["MemUsage"] if r["running"] else "-- / --",
                r["MemPerc"] if r["running"] else "--",
                r["NetIO"] if r["running"] else "--",
                r["BlockIO"] if r["running"] else "--",
                r["PIDs"] if r["running"] else "--",
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() + "\n"
        for line in table
    )


def binary_size(n: float) -> str:
    """go-units' BytesSize (Docker's memory column): 4 significant digits, KiB, MiB..."""
    return _size(n, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), 4)


def decimal_size(n: float) -> str:
    """go-units' HumanSizeWithPrecision(n, 3) (Docker's I/O columns): kB, MB..."""
    return _size(n, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB"), 3)


def _size(n: float, base: float, units: tuple[str, ...], digits: int) -> str:
    value = float(n)
    unit = 0
    while value >= base and unit < len(units) - 1:
        value /= base
        unit += 1
    return f"{value:.{digits}g}{units[unit]}"
