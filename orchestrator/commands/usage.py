"""Single containers' ``top`` and ``stats`` (Docker's); a stack's versions
(orchestrator.commands.stackverbs) use the same ``show_top`` and ``show_stats``.

    orchestrator top web                  # ps -ef's columns, host pids
    orchestrator top web -o pid,comm      # the host's ps with these options, web's rows
    orchestrator stats --no-stream        # every running container, once
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from orchestrator.errors import ConflictError

# --no-stream measures CPU over this long (the stream refreshes every second)
NO_STREAM_INTERVAL = 0.5


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("top", help="a container's processes (ps -ef, or the ps options given)")
    p.add_argument("container")
    p.add_argument("ps_options", nargs=argparse.REMAINDER, metavar="PS OPTIONS")
    p.set_defaults(func=cmd_top)

    p = sub.add_parser("stats", help="containers' CPU, memory, network and block I/O, PIDs")
    add_stats_options(p)
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=cmd_stats)


def add_stats_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    p.add_argument("--no-stream", action="store_true", help="print once, do not refresh")
    p.add_argument("--no-trunc", action="store_true", help="full container ids")
    p.add_argument("--format", choices=("table", "json"), default="table")


def _containers(args: argparse.Namespace) -> Any:
    from orchestrator.containers import Containers
    from orchestrator.paths import state_root

    return Containers(state_root(args.root))


def cmd_top(args: argparse.Namespace) -> int:
    containers = _containers(args)
    container = containers.get(args.container)
    sys.stdout.write(show_top(containers, container, list(args.ps_options)))
    return 0


def show_top(containers: Any, container: Any, ps_options: list[str]) -> str:
    """The table of the container's processes; a ConflictError when it does not run."""
    from orchestrator import processes

    status = containers.status(container)
    if status["state"] not in ("running", "paused"):
        raise ConflictError(f"container {container.name} is not running")
    pids = container_pids(containers, container, int(status["pid"]))
    if ps_options:
        header, rows = processes.with_ps(ps_options, pids)
    else:
        header, rows = processes.table(pids)
    return processes.render(header, rows)


def container_pids(containers: Any, container: Any, init_pid: int) -> list[int]:
    """Every process of the container: its cgroup's (cgroup.procs, child cgroups too)."""
    try:
        pids = list(containers.runtime._cgroup(container.id).pids())
    except Exception:  # (no cgroup to read: its init at least)
        pids = []
    return pids or [init_pid]


def cmd_stats(args: argparse.Namespace) -> int:
    containers = _containers(args)
    if args.containers:
        chosen = [containers.get(name) for name in args.containers]

        def choose() -> list[Any]:
            return chosen
    else:

        def choose() -> list[Any]:
            every: list[Any] = containers.all()
            if args.all:
                return every
            return [c for c in every if containers.is_running(c)]

    return show_stats(containers, choose, args)


def show_stats(containers: Any, choose: Callable[[], list[Any]], args: argparse.Namespace) -> int:
    """Print the chosen containers' usage: once (--no-stream), else every second until
    Ctrl-C (the screen cleared each time, as Docker does)."""
    from orchestrator import stats

    if args.no_stream:
        rows = stats.collect(containers, choose(), NO_STREAM_INTERVAL)
        sys.stdout.write(stats.render(rows, args.no_trunc, args.format))
        return 0
    previous: dict[str, Any] = {}
    try:
        while True:
            chosen = choose()
            now = {c.id: stats.sample(containers, c) for c in chosen}
            total = stats.host_memory()
            rows = [stats.row(previous.get(c.id, now[c.id]), now[c.id], total) for c in chosen]
            if args.format == "table" and sys.stdout.isatty():
                sys.stdout.write("\x1b[2J\x1b[H")
            sys.stdout.write(stats.render(rows, args.no_trunc, args.format))
            sys.stdout.flush()
            previous = now
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
