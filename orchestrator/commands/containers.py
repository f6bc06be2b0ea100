"""Container commands: run, create, start, restart, ps, logs, stop, kill, rm, wait, inspect."""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from typing import Any

from orchestrator.errors import UserError


def add_parsers(sub: Any) -> None:
    for name in ("run", "create"):
        # -h is --hostname here, as in Docker; --help still helps.
        p = sub.add_parser(name, help=f"{name} a container from an image", add_help=False)
        p.add_argument("--help", action="help", help="show this help and exit")
        if name == "run":
            p.add_argument(
                "-d", "--detach", action="store_true", help="run in the background, print the id"
            )
        _add_container_options(p)
        p.add_argument("image")
        p.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments")
        p.set_defaults(func=cmd_run if name == "run" else cmd_create)

    p = sub.add_parser("start", help="start created or stopped containers")
    p.add_argument(
        "-a", "--attach", action="store_true", help="follow its output and return its exit code"
    )
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("restart", help="stop, then start containers")
    p.add_argument("-t", "--time", type=float, default=None, help="seconds to wait before killing")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_restart)

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", type=int, default=None)
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", help="stop containers: stop signal, grace period, then SIGKILL")
    p.add_argument(
        "-t", "--time", type=float, default=None, help="grace period in seconds (default 10)"
    )
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help="send a signal to containers (default SIGKILL)")
    p.add_argument("-s", "--signal", default="SIGKILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    for name, text in (("pause", "freeze every process of containers"), ("unpause", "thaw them")):
        p = sub.add_parser(name, help=text)
        p.add_argument("containers", nargs="+")
        p.set_defaults(func=cmd_pause if name == "pause" else cmd_unpause)

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill running containers first")
    p.add_argument("-v", "--volumes", action="store_true", help="remove their anonymous volumes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("wait", help="wait for containers to stop; print their exit codes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true", help="send our input to it")
    p.add_argument("-t", "--tty", action="store_true", help="give it a terminal")
    p.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE, repeatable")
    p.add_argument("-u", "--user", help="user[:group] (default: the container's)")
    p.add_argument("-w", "--workdir", help="working directory (default: the container's)")
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("inspect", help="show a container's record and state as JSON")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_inspect)


def _add_container_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-t", "--tty", action="store_true", help="give the container a terminal")
    p.add_argument(
        "-i", "--interactive", action="store_true", help="send our input to its terminal (with -t)"
    )
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-m", "--memory", help="memory limit (512m, 1g)")
    p.add_argument("--memory-swap", help="memory plus swap limit; -1 for unlimited")
    p.add_argument("--memory-reservation")
    p.add_argument("--cpus", help="number of CPUs (1.5)")
    p.add_argument("--cpu-shares", type=int)
    p.add_argument("--pids-limit", type=int)
    p.add_argument("-u", "--user", help="user[:group], by name or id, from the image's /etc/passwd")
    p.add_argument("-w", "--workdir")
    p.add_argument("-h", "--hostname")
    _add_network_options(p)
    p.add_argument("--entrypoint")
    p.add_argument("--read-only", action="store_true", help="read-only root; volumes stay rw")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="[SRC:]DST[:OPTS]")
    p.add_argument("--mount", action="append", default=[], metavar="type=...,target=...")
    p.add_argument("--tmpfs", action="append", default=[], metavar="DST[:size=..,mode=..]")
    p.add_argument("--volumes-from", action="append", default=[], metavar="CONTAINER[:ro|rw]")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--security-opt", action="append", default=[])
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=float, default=10.0)


def _containers(args: argparse.Namespace) -> Any:
    from orchestrator.containers import Containers
    from orchestrator.paths import state_root

    return Containers(state_root(args.root))


def _options(args: argparse.Namespace) -> Any:
    from orchestrator.description import ContainerDescription
    from orchestrator.mountspec import from_flags as mount_fields
    from orchestrator.stack.units import UnitError, parse_cpus, parse_size

    def size(value: str | None, flag: str) -> int | None:
        if value is None:
            return None
        if value == "-1":
            return -1
        try:
            return parse_size(value, flag)
        except UnitError as exc:
            raise UserError(exc.message) from None

    env: list[str] = []
    for path in args.env_file:
        env += _read_env_file(path)
    env += args.env
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    no_new_privileges = False
    seccomp: str | None = None
    for opt in args.security_opt:
        if opt in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
            no_new_privileges = True
        elif opt.startswith(("seccomp=", "seccomp:")):
            from orchestrator.seccompprofile import read_choice

            seccomp = read_choice(opt[len("seccomp=") :], f"--security-opt {opt}")
        else:
            raise UserError(
                f"--security-opt {opt}: only no-new-privileges and seccomp=unconfined|FILE"
                " are supported"
            )
    try:
        cpus = parse_cpus(args.cpus, "--cpus") if args.cpus is not None else None
    except UnitError as exc:
        raise UserError(exc.message) from None
    labels = {}
    for item in args.label:
        key, _, value = item.partition("=")
        labels[key] = value
    if args.pids_limit is not None and args.pids_limit == 0:
        raise UserError("--pids-limit must be positive, or -1 for unlimited")
    return ContainerDescription(
        **_network_fields(args),
        image=args.image,
        command=tuple(cmd) if cmd else None,
        entrypoint=tuple(args.entrypoint.split()) if args.entrypoint is not None else None,
        name=args.name,
        env=tuple(env),
        user=args.user,
        workdir=args.workdir,
        hostname=args.hostname,
        memory=size(args.memory, "--memory"),
        memory_swap=size(args.memory_swap, "--memory-swap"),
        memory_reservation=size(args.memory_reservation, "--memory-reservation"),
        cpus=cpus,
        cpu_shares=args.cpu_shares,
        pids_limit=args.pids_limit,
        auto_remove=args.rm,
        read_only=args.read_only,
        **mount_fields(args.volume, args.mount, args.tmpfs, args.volumes_from),
        cap_add=tuple(args.cap_add),
        cap_drop=tuple(args.cap_drop),
        no_new_privileges=no_new_privileges,
        seccomp=seccomp,
        labels=labels,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        tty=args.tty,
        interactive=args.interactive,
    )


def _add_network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--network",
        "--net",
        action="append",
        default=[],
        help="none (the default), host, container:NAME, or a network (repeatable)",
    )
    p.add_argument("--network-alias", action="append", default=[], help="a name on the network")
    p.add_argument("--ip", help="its IPv4 address on the (first) network")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOST:]PORT")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port")
    p.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]")
    p.add_argument("--add-host", action="append", default=[], metavar="NAME:IP")
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-option", action="append", default=[])
    p.add_argument("--link", action="append", default=[], metavar="NAME[:ALIAS]")
    p.add_argument("--domainname")


def _network_fields(args: argparse.Namespace) -> dict[str, Any]:
    from orchestrator.netflags import network_fields

    return network_fields(args)


def _read_env_file(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"--env-file {path}: {exc.strerror}") from None
    try:
        lines = data.decode().splitlines()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"--env-file {path}: line {line} is not valid UTF-8") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def cmd_create(args: argparse.Namespace) -> int:
    container = _containers(args).create(_options(args))
    print(container.id)
    return 0


def _check_terminal(args: argparse.Namespace) -> None:
    if args.tty and args.interactive and not getattr(args, "detach", False) and not os.isatty(0):
        error = UserError("the input device is not a TTY")  # Docker's words, and status 1
        error.own_status = True  # type: ignore[attr-defined]
        raise error


def cmd_run(args: argparse.Namespace) -> int:
    _check_terminal(args)
    containers = _containers(args)
    container = containers.create(_options(args))
    from runtime.attach import window_size

    terminal = window_size() if args.tty and not args.detach else None
    # Opened before the start: with --rm the monitor takes the container's files out of
    # sight before it tells the exit, and its output is read after.
    log = None if args.detach or args.tty else _open_log(container.log_path)
    try:
        attached = containers.start(container, attach=not args.detach, terminal=terminal)
    except BaseException:
        if log is not None:
            log.close()
        containers.remove(container, force=True, volumes=True)
        raise
    if attached is None:
        print(container.id)
        return 0
    try:
        if attached.console is not None:
            return _attach_terminal(
                containers, container, attached.waiter, attached.console, remove=args.rm
            )
        return _attach(
            containers, container, attached.waiter, remove=args.rm, stdin=attached.stdin, log=log
        )
    finally:
        if args.rm and container.directory.exists():  # its monitor did not: killed
            containers.remove(container, force=True)
        if args.rm and container.options.network not in ("none", "host"):
            containers.networks.release(container.id)  # its peers forget it now
        if args.rm:
            _collect_volumes(containers)


def _collect_volumes(containers: Any) -> None:
    """The anonymous volumes of a --rm container go with it (once its monitor removed it)."""
    from orchestrator.volumes import Volumes

    Volumes(containers.root).collect()


def _attach_terminal(
    containers: Any, container: Any, waiter: Any, console: Any, remove: bool = False
) -> int:
    """Join our terminal to the container's until it ends; return its exit code."""
    from runtime.attach import relay

    try:
        relay(console, interactive=container.options.interactive)
    finally:
        console.close()
    received = b""
    while chunk := waiter.recv(4096):
        received += chunk
    waiter.close()
    result = json.loads(received) if received.strip() else containers.wait(container)
    # (with remove, the monitor took the container out of sight before it told the exit; its
    # cgroup and files go on being removed meanwhile)
    return _exit_status(container, result)


def _attach(
    containers: Any,
    container: Any,
    sock: Any,
    remove: bool = False,
    offset: int = 0,
    stdin: Any = None,
    log: Any = None,
) -> int:
    """Stream the container's log to our stdout/stderr until it exits; return its exit code.

    ``sock`` was connected to the monitor before the start, so no exit goes unheard; ``log``:
    the log, opened already (``_open_log``)."""
    if stdin is not None:
        _feed(stdin)
    reader = _LogTail(container.log_path, offset)
    reader.tail.file = log
    received = b""
    try:
        while sock is not None:
            ready, _, _ = select.select([sock], [], [], 0.05)
            reader.pump()
            if ready:
                chunk = sock.recv(4096)
                received += chunk
                if not chunk:
                    break
    except KeyboardInterrupt:
        print(f"\ndetached: {container.name} keeps running", file=sys.stderr)
        return 130
    finally:
        if sock is not None:
            sock.close()
    result: dict[str, Any] = {}
    if received.strip():
        result = json.loads(received)
    if not remove:  # (removed: the monitor took it out of sight before it told the exit)
        result = result or containers.wait(container)
    reader.pump()
    reader.close()
    return _exit_status(container, result)


def _open_log(path: Any) -> Any:
    """The container's log for reading, made if its monitor has not yet (it appends to it)."""
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640), "rb")


def _exit_status(container: Any, result: dict[str, Any]) -> int:
    code = result.get("exit_code")
    if code is None:
        print(
            f"orchestrator: container {container.name}: exit status unknown: its monitor ended"
            " before recording it",
            file=sys.stderr,
        )
        return 1
    return int(code)


def _feed(sock: Any) -> None:
    """Copy our stdin to the container's in the background; its end is the container's end."""
    import socket
    import threading

    def pump() -> None:
        try:
            while data := os.read(0, 65536):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=pump, daemon=True).start()


class _LogTail:
    """Copies new log entries of a container to our stdout/stderr as they appear."""

    def __init__(self, path: Any, offset: int = 0) -> None:
        from runtime.logs import Tail

        self.tail = Tail(path, offset)

    def pump(self) -> None:
        for entry in self.tail.read_new():
            stream = sys.stderr if entry.stream == "stderr" else sys.stdout
            stream.write(entry.text)
            stream.flush()

    def close(self) -> None:
        self.tail.close()


def cmd_start(args: argparse.Namespace) -> int:
    containers = _containers(args)
    status = 0
    for name in args.containers:
        container = containers.get(name)
        # Attach to what this run writes, not to earlier runs' output (the log is rotated only
        # by size, so the offset is still right unless this run's first lines rotate it).
        offset = container.log_path.stat().st_size if container.log_path.exists() else 0
        from runtime.attach import window_size

        attached = containers.start(container, attach=args.attach, terminal=window_size())
        if attached is None:
            print(container.name)
        elif attached.console is not None:
            status = _attach_terminal(containers, container, attached.waiter, attached.console)
        else:
            status = _attach(
                containers, container, attached.waiter, offset=offset, stdin=attached.stdin
            )
    return status


def cmd_restart(args: argparse.Namespace) -> int:
    def restart(cs: Any, c: Any) -> None:
        cs.stop(c, args.time)
        cs.start(c)

    return _for_each(args, restart)


def cmd_ps(args: argparse.Namespace) -> int:
    containers = _containers(args)
    rows = [containers.status(c) for c in containers.all()]
    containers.warn_broken()
    for row in rows:
        if row.get("error"):
            print(
                f"orchestrator: warning: container {row['id'][:12]} ({row['name']}): "
                f"{row['error']}; `rm -f {row['id'][:12]}` removes it",
                file=sys.stderr,
            )
    if not args.all:
        rows = [r for r in rows if r["state"] in ("running", "paused")]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if args.quiet:
        for r in rows:
            print(r["id"][:12])
        return 0
    print(f"{'CONTAINER ID':14}{'IMAGE':24}{'COMMAND':24}{'STATUS':18}NAME")
    for r in rows:
        state = r["state"]
        if state == "exited":
            state = f"exited ({'unknown' if r.get('exit_unknown') else r['exit_code']})"
        command = (r["command"] or "")[:22]
        print(f"{r['id'][:12]:14}{str(r['image'])[:22]:24}{command:24}{state:18}{r['name']}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from runtime import logs

    containers = _containers(args)
    container = containers.get(args.container)
    if args.follow:
        entries = logs.follow(container.log_path, lambda: containers.is_running(container))
    else:
        entries = iter(logs.read(container.log_path, args.tail))
    for entry in entries:
        stream = sys.stderr if entry.stream == "stderr" else sys.stdout
        stream.write(f"{entry.time} {entry.text}" if args.timestamps else entry.text)
        stream.flush()
    return 0


def _for_each(args: argparse.Namespace, action: Any, show: Any = None) -> int:
    """Apply ``action(containers, container)`` to each named container, printing its name
    (or what ``show(container, result)`` gives). Every argument is tried, as Docker does;
    the failures are reported at the end, and any makes the status 1."""
    containers = _containers(args)
    failures: list[str] = []
    for name in args.containers:
        try:
            container = containers.get(name)
            result = action(containers, container)
        except UserError as exc:
            failures.append(str(exc))
            continue
        except _runtime_errors() as exc:
            failures.append(f"{name}: {exc}")
            continue
        print(container.name if show is None else show(container, result), flush=True)
    for failure in failures:
        print(f"orchestrator: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _runtime_errors() -> type[Exception]:
    from runtime.errors import Error

    return Error


def cmd_stop(args: argparse.Namespace) -> int:
    return _for_each(args, lambda cs, c: cs.stop(c, args.time))


def cmd_kill(args: argparse.Namespace) -> int:
    from runtime.spec import parse_signal

    try:
        sig = parse_signal(args.signal)
    except ValueError as exc:
        raise UserError(f"--signal: {exc}") from None
    return _for_each(args, lambda cs, c: cs.kill(c, sig))


def cmd_pause(args: argparse.Namespace) -> int:
    return _for_each(args, lambda cs, c: cs.pause(c))


def cmd_unpause(args: argparse.Namespace) -> int:
    return _for_each(args, lambda cs, c: cs.unpause(c))


def cmd_rm(args: argparse.Namespace) -> int:
    return _for_each(args, lambda cs, c: cs.remove(c, force=args.force, volumes=args.volumes))


def cmd_wait(args: argparse.Namespace) -> int:
    def code(container: Any, result: dict[str, Any]) -> str:
        value = result.get("exit_code")
        return "unknown" if value is None else str(value)

    return _for_each(args, lambda cs, c: cs.wait(c), code)


def cmd_exec(args: argparse.Namespace) -> int:
    """Exit with the command's own status, as ``docker exec`` does."""
    if not args.cmd:
        raise UserError("exec: give the command to run")
    _check_terminal(args)
    from runtime.attach import window_size

    containers = _containers(args)
    container = containers.get(args.container)
    stdin = 0 if args.interactive else os.open(os.devnull, os.O_RDONLY)
    return int(
        containers.exec(
            container,
            args.cmd,
            tuple(args.env),
            args.user,
            args.workdir,
            stdin=stdin,
            tty=window_size() if args.tty else None,
            interactive=args.interactive,
        )
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    containers = _containers(args)
    out = []
    failures = []
    for name in args.containers:
        try:
            container = containers.get(name)
        except UserError as exc:
            failures.append(str(exc))
            continue
        networks = containers.networks
        out.append(
            {
                **container.record,
                "state": containers.status(container),
                "networks": networks.addresses(container.id),
                "ports": [b.to_record() for b in networks.bindings(container.id)],
            }
        )
    print(json.dumps(out, indent=2))
    for failure in failures:
        print(f"orchestrator: {failure}", file=sys.stderr)
    return 1 if failures else 0
