"""Container commands: run, create, start, restart, ps, logs, stop, kill, rm, wait, inspect."""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from typing import Any

from orchestrator.errors import UserError
from orchestrator.keep import check_policy, keep, release, supervised


def add_parsers(sub: Any) -> None:
    for name in ("run", "create"):
        # -h is --hostname here, as in Docker; --help still helps.
        p = sub.add_parser(name, help=f"{name} a container from an image", add_help=False)
        p.add_argument("--help", action="help", help="show this help and exit")
        if name == "run":
            p.add_argument(
                "-d", "--detach", action="store_true", help="run in the background, print the id"
            )
            _add_sig_proxy(p)
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

    p = sub.add_parser("ps", help="list containers, newest first")
    p.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.add_argument(
        "--format",
        default="table",
        help="table (default), json (our records), a Go template ({{.Names}}), table TEMPLATE",
    )
    p.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="name, id, status, label, ancestor, exited, before, since (repeatable)",
    )
    p.add_argument("-n", "--last", type=int, default=None, help="the last N created (any state)")
    p.add_argument("-l", "--latest", action="store_true", help="the last created (any state)")
    p.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    p.add_argument(
        "-s", "--size", action="store_true", help="sizes: the writable layer (and the image's)"
    )
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("-f", "--follow", action="store_true", help="then follow what it writes")
    p.add_argument("-t", "--timestamps", action="store_true", help="each line's time first")
    p.add_argument("-n", "--tail", default="all", help="the last N lines (default all)")
    p.add_argument("--since", help="from a time (RFC 3339, Unix) or a duration before now (10m)")
    p.add_argument("--until", help="up to a time (RFC 3339, Unix) or a duration before now")
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
    p.add_argument(
        "-f", "--format", help="a Go template over the JSON: {{.State.Status}}, {{json .Config}}"
    )
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
    p.add_argument(
        "--pull",
        choices=("missing", "always", "never"),
        default="missing",
        help="pull the image from its registry: when missing (default), always, never",
    )
    p.add_argument(
        "--init", action="store_true", help="an init as its first process: reaps, passes signals"
    )
    p.add_argument("--health-cmd", help="the healthcheck: a shell command (run in the container)")
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        p.add_argument(f"--health-{flag}", metavar="DURATION", help=f"the healthcheck's {flag}")
    p.add_argument("--health-retries", type=int, help="failures in a row that make it unhealthy")
    p.add_argument(
        "--no-healthcheck", action="store_true", help="run no healthcheck (not the image's)"
    )
    p.add_argument(
        "--restart",
        default="no",
        help="no (default), always, on-failure[:N], unless-stopped: kept by the supervisor",
    )


def _add_sig_proxy(p: argparse.ArgumentParser) -> None:
    """Docker's boolean flag: ``--sig-proxy`` and ``--sig-proxy=false`` (never a separate
    value, which would take the image's name)."""
    p.add_argument(
        "--sig-proxy",
        dest="sig_proxy",
        action="store_const",
        const=True,
        default=True,
        help="pass the signals we get on to the container (default; --sig-proxy=false: not)",
    )
    for word, value in (("true", True), ("false", False), ("1", True), ("0", False)):
        p.add_argument(
            f"--sig-proxy={word}",
            dest="sig_proxy",
            action="store_const",
            const=value,
            help=argparse.SUPPRESS,
        )


# What a foreground container gets from us, as Docker's proxy passes them on (not SIGCHLD,
# SIGPIPE, SIGWINCH: those are our own business; SIGKILL and SIGSTOP cannot be caught).
_PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


class _SignalProxy:
    """While in force, the signals in ``_PROXIED`` go to the container instead of ending us;
    those that arrive before it has started are sent once it has (``started()``)."""

    def __init__(self, containers: Any, container: Any) -> None:
        self.containers = containers
        self.container = container
        self.pending: list[int] = []
        self.running = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalProxy:
        import signal

        for name in _PROXIED:
            number = getattr(signal, name)
            self.previous[number] = signal.signal(number, self._received)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def started(self) -> None:
        self.running = True
        while self.pending:
            self._send(self.pending.pop(0))

    def _received(self, number: int, frame: Any) -> None:
        if self.running:
            self._send(number)
        else:
            self.pending.append(number)

    def _send(self, number: int) -> None:
        try:
            self.containers.runtime.kill(self.container.id, number)
        except Exception:
            pass  # it has ended meanwhile: its exit is on its way to us


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
    _check_memory(args, size)
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
        init=args.init,
        restart=check_policy(args.restart, args.rm),
        healthcheck=_healthcheck_flags(args),
    )


def _healthcheck_flags(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``--health-*`` flags in the image config's form (each replaces the image's field);
    None when none is given."""
    from orchestrator.durations import DurationError, parse_duration

    if args.no_healthcheck:
        if args.health_cmd is not None:
            raise UserError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    result: dict[str, Any] = {}
    if args.health_cmd is not None:
        result["Test"] = ["CMD-SHELL", args.health_cmd]
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"),
    ):
        value = getattr(args, f"health_{flag}")
        if value is None:
            continue
        try:
            result[key] = parse_duration(value, f"--health-{flag.replace('_', '-')}")
        except DurationError as exc:
            raise UserError(exc.message) from None
    if args.health_retries is not None:
        if args.health_retries < 0:
            raise UserError("--health-retries cannot be negative")
        result["Retries"] = args.health_retries
    return result or None


MIN_MEMORY = 6 * 1024 * 1024  # the smallest limit Docker lets through (the kernel's is lower)


def _check_memory(args: argparse.Namespace, size: Any) -> None:
    """Docker's checks and words, not the kernel's refusal of a cgroup file's value."""
    memory = size(args.memory, "--memory")
    if memory is not None and 0 < memory < MIN_MEMORY:
        raise UserError(f"--memory {args.memory}: Minimum memory limit allowed is 6MB")
    reservation = size(args.memory_reservation, "--memory-reservation")
    if reservation is not None and 0 < reservation < MIN_MEMORY:
        raise UserError(
            f"--memory-reservation {args.memory_reservation}:"
            " Minimum memory reservation allowed is 6MB"
        )
    swap = size(args.memory_swap, "--memory-swap")
    if swap is not None and swap > 0:
        if memory is None:
            raise UserError(
                f"--memory-swap {args.memory_swap}: you should always set the memory limit"
                " (-m) when using the memory-swap limit"
            )
        if swap < memory:
            raise UserError(
                f"--memory-swap {args.memory_swap}: Minimum memoryswap limit should be larger"
                f" than memory limit (--memory {args.memory})"
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
    containers = _containers(args)
    container = _create(containers, args)
    print(container.id)
    return 0


def _create(containers: Any, args: argparse.Namespace) -> Any:
    """The container, its image pulled first if need be (``--pull``), its working directory
    made when the image lacks it (as Docker does)."""
    from orchestrator import runpull

    options = _options(args)
    runpull.ensure_image(containers.root, options.image, args.pull)
    container = containers.create(options)
    try:
        _make_workdir(container)
    except BaseException:
        containers.remove(container, force=True, volumes=True)
        raise
    return container


def _make_workdir(container: Any) -> None:
    from pathlib import Path

    from orchestrator import workdir
    from runtime.spec import ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR

    spec = json.loads((container.bundle / "config.json").read_bytes())
    annotations = spec.get("annotations") or {}
    if ANNOTATION_UPPERDIR not in annotations:
        return
    workdir.ensure(
        str(spec["process"].get("cwd") or "/"),
        Path(annotations[ANNOTATION_UPPERDIR]),
        [Path(p) for p in json.loads(annotations[ANNOTATION_LOWERDIRS])],
    )


def _check_terminal(args: argparse.Namespace) -> None:
    if args.tty and args.interactive and not getattr(args, "detach", False) and not os.isatty(0):
        error = UserError("the input device is not a TTY")  # Docker's words, and status 1
        error.own_status = True  # type: ignore[attr-defined]
        raise error


def cmd_run(args: argparse.Namespace) -> int:
    _check_terminal(args)
    containers = _containers(args)
    container = _create(containers, args)
    from runtime.attach import window_size

    terminal = window_size() if args.tty and not args.detach else None
    # Opened before the start: with --rm the monitor takes the container's files out of
    # sight before it tells the exit, and its output is read after.
    log = None if args.detach or args.tty else _open_log(container.log_path)
    proxy = _SignalProxy(containers, container)
    if args.sig_proxy and not args.detach:
        proxy.__enter__()
    try:
        try:
            attached = containers.start(container, attach=not args.detach, terminal=terminal)
        except BaseException:
            if log is not None:
                log.close()
            containers.remove(container, force=True, volumes=True)
            raise
        keep(containers.root, container)  # (a restart policy: the supervisor's from now on)
        if attached is None:
            print(container.id)
            return 0
        proxy.started()
        return _run_attached(args, containers, container, attached, log)
    finally:
        proxy.__exit__()


def _run_attached(
    args: argparse.Namespace, containers: Any, container: Any, attached: Any, log: Any
) -> int:
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
    from orchestrator.eventlog import died_at_exit

    died_at_exit(container, result)  # (the `die` event: we are who learnt of it)
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
    if not args.attach:

        def start(cs: Any, c: Any) -> None:
            cs.start(c)
            keep(cs.root, c)

        return _for_each(args, start)
    containers = _containers(args)
    status = 0
    for name in args.containers:
        container = containers.get(name)
        # Attach to what this run writes, not to earlier runs' output (the log is rotated only
        # by size, so the offset is still right unless this run's first lines rotate it).
        offset = container.log_path.stat().st_size if container.log_path.exists() else 0
        from runtime.attach import window_size

        # Attached, the signals we get go to the container (Docker's --sig-proxy, on for
        # start -a too); a terminal passes ^C itself.
        with _SignalProxy(containers, container) as proxy:
            attached = containers.start(container, attach=args.attach, terminal=window_size())
            keep(containers.root, container)
            proxy.started()
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
        release(cs.root, c)
        cs.stop(c, args.time)
        cs.start(c)
        keep(cs.root, c)

    return _for_each(args, restart)


def cmd_ps(args: argparse.Namespace) -> int:
    from orchestrator import pslist

    filters = pslist.parse_filters(args.filter)
    table = _ps_format(args.format, args.size) if args.format != "json" else None
    containers = _containers(args)
    listed = list(reversed(containers.all()))  # newest first, as Docker lists them
    if args.latest or args.last is not None:
        listed = listed[: 1 if args.latest else max(args.last, 0)]
    rows = [(c, containers.status(c)) for c in listed]
    containers.warn_broken()
    for _, row in rows:
        if row.get("error"):
            print(
                f"orchestrator: warning: container {row['id'][:12]} ({row['name']}): "
                f"{row['error']}; `rm -f {row['id'][:12]}` removes it",
                file=sys.stderr,
            )
    every = args.all or args.latest or args.last is not None or "status" in filters
    if not every:
        rows = [(c, r) for c, r in rows if r["state"] in ("running", "paused")]
    if filters:
        match = pslist.Matcher(
            filters, _image_resolver(containers), lambda name: containers.get(name)
        )
        rows = [(c, r) for c, r in rows if match(c, r)]
    if args.quiet:
        for c, _ in rows:
            print(c.id if args.no_trunc else c.id[:12])
        return 0
    if table is None:
        print(json.dumps([r for _, r in rows], indent=2))
        return 0
    import time

    now = time.time()
    image_config = _image_configs(containers)
    sizes = _sizes(containers) if args.size or ".Size" in args.format else None
    docker_rows = [
        pslist.row(
            c,
            r,
            pslist.effective_command(c.record, image_config),
            _ports(containers, c, r),
            _network_names(containers, c),
            trunc=not args.no_trunc,
            now=now,
            size=sizes(c) if sizes else "",
            health=_health(containers, c),
        )
        for c, r in rows
    ]
    from orchestrator.gotemplate import TemplateError

    try:
        lines = table.lines(docker_rows)
    except TemplateError as exc:
        raise UserError(f"--format: {exc}") from None
    for line in lines:
        print(line)
    return 0


def _health(containers: Any, container: Any) -> str | None:
    """A container's health as its supervisor recorded it (``starting`` before the first
    verdict); None without a healthcheck."""
    from orchestrator.keep import has_healthcheck

    if not has_healthcheck(container):
        return None
    return (supervised(containers.root, container) or {}).get("health") or "starting"


def _sizes(containers: Any) -> Any:
    """Docker's SIZE column for a container: its writable layer, and with the image's layers
    (``2B (virtual 1.2MB)``); each image measured once."""
    from orchestrator.diskusage import human_size, total_size, tree_size
    from orchestrator.paths import images_dir
    from runtime.image.store import ImageStore

    store = ImageStore(images_dir(containers.root))
    image_sizes: dict[str, int] = {}

    def size(container: Any) -> str:
        image_id = str(container.record.get("image_id") or "")
        if image_id not in image_sizes:
            try:
                image_sizes[image_id] = total_size(store.layer_dirs(store.resolve(image_id)))
            except Exception:
                image_sizes[image_id] = 0
        own = tree_size(container.directory / "upper")
        return f"{human_size(own)} (virtual {human_size(own + image_sizes[image_id])})"

    return size


def _ps_format(spec: str, sizes: bool = False) -> Any:
    from orchestrator import pslist
    from orchestrator.gotemplate import Format, TemplateError

    table = pslist.DEFAULT_TABLE + ("\\t{{.Size}}" if sizes else "")
    try:
        return Format(spec, pslist.HEADERS, table)
    except TemplateError as exc:
        raise UserError(f"--format: {exc}") from None


def _image_resolver(containers: Any) -> Any:
    from orchestrator.paths import images_dir
    from runtime.image.store import ImageStore

    store = ImageStore(images_dir(containers.root))

    def resolve(name: str) -> str | None:
        try:
            return str(store.resolve(name).id)
        except Exception:
            return None

    return resolve


def _image_configs(containers: Any) -> Any:
    """Image id -> its config, read once per ps."""
    from orchestrator.paths import images_dir
    from runtime.image.store import ImageStore

    store = ImageStore(images_dir(containers.root))
    cache: dict[str, dict[str, Any]] = {}

    def config(image_id: str) -> dict[str, Any]:
        if image_id not in cache:
            cache[image_id] = json.loads(store.read_blob(image_id, "image config"))
        return cache[image_id]

    return config


def _ports(containers: Any, container: Any, status: dict[str, Any]) -> list[Any]:
    if status["state"] not in ("running", "paused") or not (containers.root / "networks").exists():
        return []
    return list(containers.networks.bindings(container.id))


def _network_names(containers: Any, container: Any) -> list[str]:
    network = container.options.network
    if network in ("none", "host") or network.startswith(("container:", "service:")):
        return [network]
    if not (containers.root / "networks").exists():
        return []
    return sorted(containers.networks.addresses(container.id))


def cmd_logs(args: argparse.Namespace) -> int:
    from orchestrator import logview
    from orchestrator.timespec import parse_time

    selection = logview.Selection(
        logview.parse_tail(args.tail),
        parse_time(args.since, "--since") if args.since else None,
        parse_time(args.until, "--until") if args.until else None,
    )
    containers = _containers(args)
    container = containers.get(args.container)
    if args.follow:
        entries = logview.follow(
            container.log_path, lambda: containers.is_running(container), selection
        )
    else:
        entries = iter(logview.read(container.log_path, selection))
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
    def stop(cs: Any, c: Any) -> None:
        release(cs.root, c)
        cs.stop(c, args.time)

    return _for_each(args, stop)


def cmd_kill(args: argparse.Namespace) -> int:
    from runtime.spec import parse_signal

    try:
        sig = parse_signal(args.signal)
    except ValueError as exc:
        raise UserError(f"--signal: {exc}") from None

    def kill(cs: Any, c: Any) -> None:
        # Docker's rule: a fatal signal (KILL, TERM, INT, QUIT, the stop signal) suspends the
        # restart policy until the next start; another (USR1, HUP...) leaves it in place.
        if sig in _FATAL_SIGNALS or sig == _stop_signal_of(c):
            release(cs.root, c)
        cs.kill(c, sig)

    return _for_each(args, kill)


_FATAL_SIGNALS = (9, 15, 2, 3)


def _stop_signal_of(container: Any) -> int | None:
    from runtime.spec import parse_signal

    try:
        return parse_signal(container.options.stop_signal or "SIGTERM")
    except ValueError:
        return None


def cmd_pause(args: argparse.Namespace) -> int:
    return _for_each(args, lambda cs, c: cs.pause(c))


def cmd_unpause(args: argparse.Namespace) -> int:
    return _for_each(args, lambda cs, c: cs.unpause(c))


def cmd_rm(args: argparse.Namespace) -> int:
    def remove(cs: Any, c: Any) -> None:
        if args.force:
            release(cs.root, c)
        cs.remove(c, force=args.force, volumes=args.volumes)

    return _for_each(args, remove)


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
    from orchestrator import dockerinspect, pslist
    from orchestrator.gotemplate import TemplateError, parse, render

    try:
        template = parse(args.format) if args.format is not None else None
    except TemplateError as exc:
        raise UserError(f"--format: {exc}") from None
    containers = _containers(args)
    image_config = _image_configs(containers)
    out = []
    failures = []
    for name in args.containers:
        try:
            container = containers.get(name)
        except UserError as exc:
            failures.append(str(exc))
            continue
        networks = containers.networks
        status = containers.status(container)
        addresses = networks.addresses(container.id)
        bindings = networks.bindings(container.id)
        image_id = str(container.record.get("image_id") or "")
        try:
            config = image_config(image_id)
        except Exception:
            config = {}  # its image is gone
        out.append(
            {
                **container.record,
                "state": status,
                "networks": addresses,
                "ports": [b.to_record() for b in bindings],
                **dockerinspect.fields(
                    container,
                    status,
                    addresses,
                    bindings,
                    pslist.effective_command(container.record, {image_id: config}.__getitem__),
                    config,
                    supervised(containers.root, container),
                ),
            }
        )
    if template is None:
        print(json.dumps(out, indent=2))
    else:
        try:
            for item in out:
                print(render(template, item))
        except TemplateError as exc:
            raise UserError(f"--format: {exc}") from None
    for failure in failures:
        print(f"orchestrator: {failure}", file=sys.stderr)
    return 1 if failures else 0
