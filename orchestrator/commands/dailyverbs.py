"""Docker's everyday container verbs: ``attach``, ``cp``, ``rename``, ``container prune`` and
``events`` (single containers; with ``-f``/``-p`` a stack's events, from its supervisor).

    orchestrator cp web:/etc/hosts ./hosts          orchestrator cp ./site web:/srv/
    orchestrator attach web                          orchestrator rename web front
    orchestrator container prune -f --filter until=1h
    orchestrator events --since 10m --filter event=die --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orchestrator.errors import UserError


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("attach", help="join a running container's output (and input)")
    p.add_argument("--no-stdin", action="store_true", help="do not send our input")
    p.add_argument(
        "--sig-proxy",
        type=_boolean("--sig-proxy"),
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="send the signals we get to it (default true; without a terminal)",
    )
    p.add_argument("--detach-keys", default=None, help="keys that detach (default ctrl-p,ctrl-q)")
    p.add_argument("container")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser(
        "cp",
        help="copy files between a container and the host",
        description="cp [-a] [-L] CONTAINER:SRC DEST|-  or  cp [-a] [-L] SRC|- CONTAINER:DEST."
        " SRC/. copies a directory's contents; - is a tar stream on stdin or stdout.",
    )
    p.add_argument("-a", "--archive", action="store_true", help="keep owners (uid and gid)")
    p.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink in SRC")
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DEST")
    p.set_defaults(func=cmd_cp)

    p = sub.add_parser("rename", help="rename a container")
    p.add_argument("old", metavar="CONTAINER")
    p.add_argument("new", metavar="NEW_NAME")
    p.set_defaults(func=cmd_rename)

    container = sub.add_parser("container", help="manage containers")
    csub = container.add_subparsers(dest="container_command", metavar="COMMAND")
    container.set_defaults(func=lambda args: _help(container))
    p = csub.add_parser("prune", help="remove every stopped container")
    p.add_argument("-f", "--force", action="store_true", help="do not ask")
    p.add_argument(
        "--filter", action="append", default=[], dest="filters", help="until=TIME, label=K[=V]"
    )
    p.set_defaults(func=cmd_container_prune)

    # `events` is also the stack's (commands/stack.py): made there or here, and given both's
    # flags, it answers for a stack with -f/-p and for single containers otherwise.
    events = sub.choices.get("events") or sub.add_parser(
        "events", help="container events: history (--since) and as they happen"
    )
    if not isinstance(events, argparse.ArgumentParser):
        return  # (only another command's parser is being made)
    if "--json" not in events._option_string_actions:
        events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--since", help="from this time (timestamp, RFC 3339 or duration: 10m)")
    events.add_argument("--until", help="up to this time, then stop (default: follow)")
    events.add_argument(
        "-f",  # (after the verb: Docker's short --filter, not the stack file)
        "--filter",
        action="append",
        default=[],
        dest="filters",
        metavar="KEY=VALUE",
        help="container=, event=, image=, label=, type=",
    )
    events.add_argument("--format", help="json, or a template such as '{{json .}}'")
    events.set_defaults(func=cmd_events)


def _boolean(flag: str) -> Any:
    def parse(text: str) -> bool:
        value = text.strip().lower()
        if value in ("true", "1", "yes"):
            return True
        if value in ("false", "0", "no"):
            return False
        raise argparse.ArgumentTypeError(f"{flag} takes true or false, not {text!r}")

    return parse


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _containers(args: argparse.Namespace) -> Any:
    from orchestrator.containers import Containers
    from orchestrator.paths import state_root

    return Containers(state_root(args.root))


# -- attach --------------------------------------------------------------------------------------


def cmd_attach(args: argparse.Namespace) -> int:
    from orchestrator.attaching import DEFAULT_KEYS, attach, parse_keys

    keys = parse_keys(args.detach_keys or DEFAULT_KEYS)
    containers = _containers(args)
    container = containers.get(args.container)
    return attach(containers, container, not args.no_stdin, args.sig_proxy, keys)


# -- cp ------------------------------------------------------------------------------------------


def _split(arg: str) -> tuple[str | None, str]:
    """(container, path) of a cp argument: ``NAME:PATH``; a path that starts with / or . is
    the host's even with a colon in it (Docker's rule)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    name, sep, path = arg.partition(":")
    if sep and name and "/" not in name:
        return name, path or "/"
    return None, arg


def cmd_cp(args: argparse.Namespace) -> int:
    from orchestrator import containercopy

    src_container, src = _split(args.source)
    dest_container, dest = _split(args.destination)
    if src_container and dest_container:
        raise UserError("cp: copying between containers is not supported")
    if not src_container and not dest_container:
        raise UserError("cp: name a container in SRC or DEST (CONTAINER:PATH)")
    if dest == "-" and sys.stdout.isatty():
        raise UserError("cp: refusing to write a tar archive to a terminal: redirect stdout")
    containers = _containers(args)
    name = src_container or dest_container
    assert name is not None
    container = containers.get(name)
    if container.broken:
        raise UserError(f"container {container.name}: {container.broken}")
    if src_container:
        containercopy.copy_out(containers, container, src, dest, args.follow_link, args.archive)
    else:
        if src == "-" and sys.stdin.isatty():
            raise UserError("cp: give a tar archive on stdin, not a terminal")
        containercopy.copy_in(containers, container, src, dest, args.follow_link, args.archive)
    return 0


# -- rename --------------------------------------------------------------------------------------


def cmd_rename(args: argparse.Namespace) -> int:
    from orchestrator.renaming import rename

    rename(_containers(args), args.old, args.new)
    return 0


# -- container prune -----------------------------------------------------------------------------


def cmd_container_prune(args: argparse.Namespace) -> int:
    from orchestrator.diskusage import human_size, tree_size
    from orchestrator.timespec import from_record, parse_time

    until: float | None = None
    labels: list[tuple[str, str | None]] = []
    for item in args.filters:
        key, sep, value = item.partition("=")
        if key == "until" and sep:
            until = parse_time(value, f"--filter {item}")
        elif key == "label" and sep:
            k, has, v = value.partition("=")
            labels.append((k, v if has else None))
        else:
            raise UserError(f"--filter {item!r}: use until=TIME or label=KEY[=VALUE]")
    if not args.force:
        print(
            "WARNING! This will remove all stopped containers.\n"
            "Are you sure you want to continue? [y/N] ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    containers = _containers(args)
    removed: list[str] = []
    reclaimed = 0
    failures: list[str] = []
    for container in containers.all():
        if container.record.get("options", {}).get("identity", {}).get("project"):
            continue  # a stack's: `down` removes those
        if containers.status(container)["state"] not in ("exited", "created"):
            continue
        created = from_record(container.record.get("created"))
        if until is not None and (created is None or created >= until):
            continue
        own = container.record.get("options", {}).get("labels") or {}
        if not all(k in own and (v is None or own[k] == v) for k, v in labels):
            continue
        size = tree_size(container.directory)
        try:
            containers.remove(container)
        except UserError as exc:
            failures.append(str(exc))
            continue
        removed.append(container.id)
        reclaimed += size
    if removed:
        print("Deleted Containers:")
        for cid in removed:
            print(cid)
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    for failure in failures:
        print(f"orchestrator: {failure}", file=sys.stderr)
    return 1 if failures else 0


# -- events --------------------------------------------------------------------------------------


def cmd_events(args: argparse.Namespace) -> int:
    if args.files or args.project_name:
        from orchestrator.commands import stack

        return int(stack.cmd_events(args))
    import time

    from orchestrator import eventlog
    from orchestrator.paths import state_root
    from orchestrator.timespec import parse_time

    root = state_root(args.root)
    now = time.time()
    since = parse_time(args.since, "--since", now) if args.since else None
    until = parse_time(args.until, "--until", now) if args.until else None
    filters = eventlog.parse_filters(args.filters)
    fmt = "json" if args.json else args.format
    show = _formatter(fmt)
    if until is not None and until <= now:
        events = iter(eventlog.history(root, since, until))
    else:
        watch = _DeathWatch(root)
        events = eventlog.follow(root, since, until, idle=watch.poll)
    try:
        for event in events:
            if eventlog.matches(event, filters):
                print(show(event), flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


def docker_event(event: dict[str, Any]) -> dict[str, Any]:
    """Our event in the shape of Docker's JSON events."""
    attributes = {"image": event.get("image", ""), "name": event.get("name", "")}
    attributes.update(event.get("attributes", {}))
    return {
        "status": event["action"],
        "id": event["id"],
        "from": event.get("image", ""),
        "Type": event.get("type", "container"),
        "Action": event["action"],
        "Actor": {"ID": event["id"], "Attributes": attributes},
        "scope": "local",
        "time": int(event["time"]),
        "timeNano": int(event.get("timeNano") or event["time"] * 1e9),
    }


def _formatter(fmt: str | None) -> Any:
    from orchestrator import eventlog

    if not fmt:
        return eventlog.render
    if fmt.strip() in ("json", "{{json .}}"):
        return lambda e: json.dumps(docker_event(e), separators=(",", ":"))
    return lambda e: fill_template(fmt, docker_event(e))


def fill_template(template: str, value: dict[str, Any]) -> str:
    """Docker's ``--format`` templates (orchestrator.gotemplate); a field that is not there is
    an error naming it."""
    from orchestrator.gotemplate import parse, render

    return render(parse(template), value, strict=True)


class _DeathWatch:
    """While ``events`` follows, it waits on every running container's monitor, so that a
    container's own death is recorded (once) even when nobody else waits on it."""

    def __init__(self, root: Any) -> None:
        from orchestrator.containers import Containers

        self.containers = Containers(root)
        self.waiters: dict[str, tuple[Any, Any, bytearray]] = {}
        self.next_scan = 0.0

    def poll(self) -> None:
        import select
        import time

        from orchestrator import eventlog

        if time.monotonic() >= self.next_scan:
            self._scan()
            self.next_scan = time.monotonic() + 1.0
        if not self.waiters:
            return
        socks = [w[0] for w in self.waiters.values()]
        ready, _, _ = select.select(socks, [], [], 0)
        for cid, (sock, container, received) in list(self.waiters.items()):
            if sock not in ready:
                continue
            try:
                chunk = sock.recv(4096)
            except OSError:
                chunk = b""
            received += chunk
            if chunk and not received.endswith(b"\n"):
                continue
            sock.close()
            del self.waiters[cid]
            try:
                result = json.loads(received) if received.strip() else None
            except ValueError:
                result = None
            if result is None:
                try:
                    result = self.containers.runtime.wait(cid, 0.5)
                except Exception:
                    result = None
            eventlog.died(self.containers.root, container, result)

    def _scan(self) -> None:
        try:
            everyone = self.containers.all()
        except Exception:
            return
        for container in everyone:
            if container.id in self.waiters or container.broken:
                continue
            try:
                if self.containers.status(container)["state"] not in ("running", "paused"):
                    continue
                sock = self.containers.runtime.connect_waiter(container.id)
            except Exception:
                continue
            if sock is not None:
                self.waiters[container.id] = (sock, container, bytearray())
