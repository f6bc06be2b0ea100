"""A container's processes, as ``ps -ef`` shows them (``top``): read from the host's /proc for
the pids of the container's cgroup, so that the pids are the host's, as in Docker's ``top``.

    header, rows = table(pids)                    # UID PID PPID C STIME TTY TIME CMD
    header, rows = with_ps(["-o", "pid,comm"], pids)   # the host's ps, other columns
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.errors import UserError

HEADER = ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")


@dataclass(frozen=True)
class Process:
    user: str
    pid: int
    ppid: int
    cpu: int  # ps's C: CPU time over lifetime, percent
    stime: str
    tty: str
    time: str
    cmd: str

    def row(self) -> list[str]:
        return [
            self.user,
            str(self.pid),
            str(self.ppid),
            str(self.cpu),
            self.stime,
            self.tty,
            self.time,
            self.cmd,
        ]


def table(pids: Iterable[int], proc: str = "/proc") -> tuple[list[str], list[list[str]]]:
    """``ps -ef``'s columns for ``pids`` (those that ended meanwhile left out), by pid."""
    clock = _Clock(proc)
    found = [p for p in (read_process(pid, clock, proc) for pid in sorted(set(pids))) if p]
    return list(HEADER), [p.row() for p in found]


def read_process(pid: int, clock: _Clock, proc: str = "/proc") -> Process | None:
    """One process's row, or None once it is gone."""
    base = f"{proc}/{pid}"
    try:
        with open(f"{base}/stat") as f:
            stat = f.read()
        with open(f"{base}/status") as f:
            status = f.read()
        with open(f"{base}/cmdline", "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command's name is in parentheses and may hold anything, parentheses too
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid, tty_nr = int(fields[1]), int(fields[4])
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    started = clock.boot + int(fields[19]) / clock.hz
    elapsed = max(clock.now - started, 0.0)
    uid = _effective_uid(status)
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    return Process(
        user=_user(uid),
        pid=pid,
        ppid=ppid,
        cpu=int(ticks / clock.hz * 100 / elapsed) if elapsed >= 1 else 0,
        stime=_start_time(started, clock.now),
        tty=tty_name(tty_nr),
        time=_cpu_time(ticks // clock.hz),
        cmd=" ".join(args) if args else f"[{comm}]",
    )


class _Clock:
    """The kernel's boot time and tick rate: start times in /proc are ticks since boot."""

    def __init__(self, proc: str = "/proc") -> None:
        self.hz = os.sysconf("SC_CLK_TCK")
        self.now = time.time()
        self.boot = self.now - _uptime(proc)


def _uptime(proc: str) -> float:
    with open(f"{proc}/uptime") as f:
        return float(f.read().split()[0])


def _effective_uid(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    return 0


def _user(uid: int) -> str:
    """The host's name for ``uid`` (ps's way: the number when unknown or too long)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
    return name if len(name) <= 8 else str(uid)


def tty_name(tty_nr: int) -> str:
    """ps's TTY column from /proc/PID/stat's tty_nr."""
    if tty_nr == 0:
        return "?"
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{minor + (major - 136) * 256}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    return "?"


def _start_time(started: float, now: float) -> str:
    """ps's STIME: the time today, the month and day this year, else the year."""
    then, today = time.localtime(started), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%b%d", then)
    return time.strftime("%Y", then)


def _cpu_time(seconds: int) -> str:
    """ps's TIME: [DD-]HH:MM:SS."""
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def with_ps(options: list[str], pids: Iterable[int]) -> tuple[list[str], list[list[str]]]:
    """The host's ``ps OPTIONS``, only the rows of ``pids`` (Docker's ``top`` with ps
    options): the output needs a PID column."""
    try:
        done = subprocess.run(
            ["ps", *options], capture_output=True, text=True, check=False, timeout=30
        )
    except FileNotFoundError:
        raise UserError("top with ps options needs the host's ps (procps)") from None
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[0] if done.stderr.strip() else "failed"
        raise UserError(f"ps {' '.join(options)}: {why}")
    return filter_ps_output(done.stdout, set(pids))


def filter_ps_output(text: str, pids: set[int]) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    if not lines:
        raise UserError("ps printed nothing")
    header = lines[0].split()
    if "PID" not in header:
        raise UserError("ps options must keep the PID column")
    column = header.index("PID")
    rows = []
    for line in lines[1:]:
        # the last column (the command) may hold spaces
        fields = line.split(None, len(header) - 1)
        if len(fields) == len(header) and fields[column].isdigit() and int(fields[column]) in pids:
            rows.append(fields)
    return header, rows


def render(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, the last one as it is."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append("   ".join([*cells, row[-1]]).rstrip())
    return "\n".join(out) + "\n"
