"""Stack commands, Compose's: ``up``, ``down``, ``ls``, ``supervisor``, and with ``-f``/``-p``
the project's ``ps``, ``logs``, ``stop``, ``start``, ``restart``.

    orchestrator -f stack.yaml up -d          # the supervisor (started when none runs) does it
    orchestrator -f stack.yaml ps
    orchestrator -f stack.yaml down

The CLI loads and checks the stack itself first, so that a bad file or a missing image is one
error before anything starts; then it asks the supervisor, over its unix socket.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import NotFoundError, UserError

STACK_ONLY = ("up", "down", "ls", "supervisor")
SHARED = ("ps", "logs", "stop", "start", "restart")
COLORS = ("36", "33", "32", "35", "34", "91", "92", "93", "94", "95", "96")


def add_parsers(sub: Any, shared: bool = False) -> None:
    """The stack-only commands (in the main parser); with ``shared``, also the project's
    versions of the container verbs (in the stack parser)."""
    up = sub.add_parser("up", help="create and start the stack's containers (Compose's up)")
    up.add_argument("-d", "--detach", action="store_true", help="return once started")
    up.add_argument("--wait", action="store_true", help="with -d: wait until healthy or running")
    up.add_argument("--wait-timeout", type=float, default=120.0, metavar="S")
    up.add_argument("--build", action="store_true", help="build images before starting")
    up.add_argument("--force-recreate", action="store_true")
    up.add_argument("--no-recreate", action="store_true")
    up.add_argument("--no-start", action="store_true")
    up.add_argument("--no-deps", action="store_true")
    up.add_argument("--remove-orphans", action="store_true")
    up.add_argument("--scale", action="append", default=[], metavar="SERVICE=N")
    up.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    up.add_argument("--profile", action="append", dest="profiles", metavar="PROFILE")
    up.add_argument("-t", "--timeout", type=float, default=None, help="stop timeout (s)")
    up.add_argument("services", nargs="*", metavar="SERVICE")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop and remove the stack's containers")
    down.add_argument("-t", "--timeout", type=float, default=None)
    down.add_argument("--remove-orphans", action="store_true", help="(always done)")
    down.add_argument("--profile", action="append", dest="profiles", metavar="PROFILE")
    down.set_defaults(func=cmd_down)

    ls = sub.add_parser("ls", help="list the stacks that are up")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=cmd_ls)

    supervisor = sub.add_parser("supervisor", help="run the supervisor in the foreground")
    supervisor.set_defaults(func=cmd_supervisor)

    if not shared:
        return
    ps = sub.add_parser("ps", help="the stack's containers")
    ps.add_argument("-a", "--all", action="store_true")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--format", choices=("table", "json"), default="table")
    ps.add_argument("services", nargs="*", metavar="SERVICE")
    ps.set_defaults(func=cmd_ps)

    logs = sub.add_parser("logs", help="the stack's output, each line prefixed by its container")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", default="all")
    logs.add_argument("-t", "--timestamps", action="store_true")
    logs.add_argument("--no-color", action="store_true")
    logs.add_argument("services", nargs="*", metavar="SERVICE")
    logs.set_defaults(func=cmd_logs)

    for verb in ("stop", "start", "restart"):
        p = sub.add_parser(verb, help=f"{verb} the stack's services")
        if verb != "start":
            p.add_argument("-t", "--timeout", type=float, default=None)
        p.add_argument("services", nargs="*", metavar="SERVICE")
        p.set_defaults(func=cmd_verb, verb=verb)


# -- helpers -------------------------------------------------------------------------------------


def _root(args: argparse.Namespace) -> Path:
    from orchestrator.paths import state_root

    return state_root(args.root)


def _socket(root: Path) -> Path:
    from orchestrator.supervisor.daemon import SOCKET_NAME

    return root / SOCKET_NAME


def _load(args: argparse.Namespace) -> Any:
    from orchestrator.stack import load_stack

    stack = load_stack(
        args.files or None,
        project_name=args.project_name,
        profiles=getattr(args, "profiles", None),
    )
    for warning in stack.warnings:
        print(f"orchestrator: warning: {warning}", file=sys.stderr)
    return stack


def _project_name(args: argparse.Namespace) -> str:
    if args.project_name and not args.files:
        return str(args.project_name)
    return str(_load(args).name)


def ensure_supervisor(root: Path, timeout: float = 15.0) -> None:
    """Start a supervisor for ``root`` in the background unless one answers."""
    from orchestrator.supervisor import http

    sock = _socket(root)
    try:
        http.call(sock, "GET", "/v1/ping", timeout=5)
        return
    except http.Unreachable:
        pass
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "supervisor.log", "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "--root", str(root), "supervisor"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        try:
            http.call(sock, "GET", "/v1/ping", timeout=5)
            return
        except http.Unreachable:
            if time.monotonic() > deadline:
                raise UserError(
                    f"the supervisor did not start; see {root / 'supervisor.log'}"
                ) from None
            time.sleep(0.02)


def _call(root: Path, method: str, target: str, body: Any = None) -> Any:
    from orchestrator.supervisor import http

    try:
        status, document = http.call(_socket(root), method, target, body, timeout=None)
    except http.Unreachable:
        raise UserError("no supervisor runs for this state root (start one with `up`)") from None
    if status >= 400:
        message = (document or {}).get("error") or f"status {status}"
        raise (NotFoundError if status == 404 else UserError)(str(message))
    return document


def _check_images(root: Path, stack: Any, services: list[str]) -> None:
    """A missing image is an error before anything starts (one that will be built is not)."""
    from orchestrator.paths import images_dir
    from runtime.errors import NotFound
    from runtime.image.store import ImageStore

    store = ImageStore(images_dir(root))
    for name in services:
        service = stack.services[name]
        if service.build is not None:
            continue
        try:
            store.resolve(service.image)
        except NotFound:
            raise UserError(
                f"service {name}: image {service.image!r} not found (import, pull or build it)"
            ) from None


def _scale(items: list[str], stack: Any) -> dict[str, int]:
    result = {}
    for item in items:
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit():
            raise UserError(f"--scale {item!r}: expected SERVICE=N")
        if name not in stack.services:
            raise UserError(f"--scale {item!r}: no service {name!r} in the stack")
        result[name] = int(count)
    return result


# -- commands --------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    root = _root(args)
    stack = _load(args)
    for name in args.services:
        if name not in stack.services:
            raise UserError(f"no service {name!r} in the stack")
    scale = _scale(args.scale, stack)
    from orchestrator.stack.graph import DependencyGraph

    graph = DependencyGraph.from_services(stack.services)
    chosen = list(args.services) if args.no_deps else list(graph.closure(list(args.services)))
    _check_images(root, stack, chosen or list(stack.services))
    options = {
        "services": list(args.services),
        "no_deps": args.no_deps,
        "force_recreate": args.force_recreate,
        "no_recreate": args.no_recreate,
        "no_start": args.no_start,
        "remove_orphans": args.remove_orphans,
        "wait": args.wait,
        "timeout": args.wait_timeout,
        "build": args.build,
    }
    if args.dry_run:
        return _dry_run(root, stack, options, scale)
    spec = {
        "files": list(stack.files),
        "workdir": stack.project_dir,
        "environ": dict(os.environ),
        "profiles": list(args.profiles or ()),
        "scale": scale,
    }
    ensure_supervisor(root)
    failed = _stream_up(root, stack.name, {"spec": spec, "options": options})
    if failed or args.detach:
        return 1 if failed else 0
    return _attached(args, root, stack)


def _stream_up(root: Path, project: str, body: dict[str, Any]) -> bool:
    """Print the progress of ``up``; True if anything failed."""
    from orchestrator.supervisor import http

    failed = False
    try:
        for status, message in http.stream(
            _socket(root), "POST", f"/v1/projects/{project}/up", body
        ):
            if status >= 400 or "error" in message:
                print(f"orchestrator: {message.get('error')}", file=sys.stderr)
                return True
            if "event" in message:
                event = message["event"]
                label = event["container"] or event["service"]
                detail = f" ({event['detail']})" if event["detail"] else ""
                print(f" {label:30s} {event['action']}{detail}", file=sys.stderr)
            if "result" in message:
                result = message["result"]
                for service, why in sorted(result["failed"].items()):
                    print(f"orchestrator: service {service}: {why}", file=sys.stderr)
                    failed = True
                for orphan in result["orphans"]:
                    print(
                        f"orchestrator: warning: orphan container {orphan}"
                        " (remove it with --remove-orphans)",
                        file=sys.stderr,
                    )
    except http.Unreachable as exc:
        raise UserError(f"the supervisor went away: {exc}") from None
    return failed


def _dry_run(root: Path, stack: Any, options: dict[str, Any], scale: dict[str, int]) -> int:
    from orchestrator.containers import Containers
    from orchestrator.paths import images_dir
    from orchestrator.supervisor.observe import observe
    from orchestrator.supervisor.plan import PlanOptions, make_plan
    from runtime.image.store import ImageStore

    store = ImageStore(images_dir(root))
    image_ids = {}
    for name, service in stack.services.items():
        try:
            image_ids[name] = store.resolve(service.image or f"{stack.name}-{name}").id
        except Exception:
            continue
    plan = make_plan(
        stack,
        observe(Containers(root), stack.name),
        image_ids,
        PlanOptions(
            services=tuple(options["services"]),
            no_deps=options["no_deps"],
            scale=scale,
            force_recreate=options["force_recreate"],
            no_recreate=options["no_recreate"],
            no_start=options["no_start"],
            remove_orphans=options["remove_orphans"],
        ),
    )
    sys.stdout.write(plan.text() or "nothing to do\n")
    return 0


def _attached(args: argparse.Namespace, root: Path, stack: Any) -> int:
    """``up`` without -d: follow the logs; Ctrl-C stops the stack (a second one leaves it)."""
    print("Attaching; Ctrl-C stops the stack.", file=sys.stderr)
    try:
        _follow_logs(root, stack.name, [], tail=None, timestamps=False, color=sys.stdout.isatty())
    except KeyboardInterrupt:
        print("Stopping (Ctrl-C again to leave it running)...", file=sys.stderr)
        try:
            _call(root, "POST", f"/v1/projects/{stack.name}/stop", {"timeout": args.timeout})
        except KeyboardInterrupt:
            return 130
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    root = _root(args)
    name = _project_name(args)
    try:
        document = _call(root, "POST", f"/v1/projects/{name}/down", {"timeout": args.timeout})
    except UserError as exc:
        if "no supervisor" not in str(exc):
            raise
        return _down_without_supervisor(root, name)
    for removed in document["removed"]:
        print(f" {removed:30s} removed", file=sys.stderr)
    return 0


def _down_without_supervisor(root: Path, name: str) -> int:
    """Nothing to ask: remove what the project left (a supervisor that died, say)."""
    from orchestrator.containers import Containers
    from orchestrator.supervisor.observe import project_containers

    containers = Containers(root)
    for container in project_containers(containers, name):
        containers.remove(container, force=True)
        print(f" {container.name:30s} removed", file=sys.stderr)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    root = _root(args)
    try:
        projects = _call(root, "GET", "/v1/projects")
    except UserError:
        projects = []
    if args.format == "json":
        print(json.dumps(projects, indent=2))
        return 0
    print(f"{'NAME':20s} {'STATUS':16s} FILES")
    for p in projects:
        print(f"{p['name']:20s} {'running(' + str(p['running']) + ')':16s} {','.join(p['files'])}")
    return 0


def cmd_supervisor(args: argparse.Namespace) -> int:
    from orchestrator.supervisor.daemon import main

    return main(_root(args))


def cmd_ps(args: argparse.Namespace) -> int:
    root = _root(args)
    name = _project_name(args)
    try:
        rows = _call(root, "GET", f"/v1/projects/{name}/containers")
    except UserError as exc:
        if "no supervisor" not in str(exc):
            raise
        rows = _rows_without_supervisor(root, name)
    rows = [r for r in rows if not args.services or r["service"] in args.services]
    if not args.all:
        rows = [r for r in rows if r["state"] in ("running", "paused", "restarting")]
    if args.quiet:
        print("\n".join(r["id"] for r in rows))
        return 0
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':28s} {'SERVICE':14s} {'STATE':10s} {'HEALTH':10s} {'RESTARTS':8s} EXIT")
    for r in rows:
        print(
            f"{r['name']:28s} {r['service']:14s} {r['state']:10s} {r['health'] or '':10s}"
            f" {r['restart_count']!s:8s} {'' if r['exit_code'] is None else r['exit_code']}"
        )
    return 0


def _rows_without_supervisor(root: Path, name: str) -> list[dict[str, Any]]:
    from orchestrator.containers import Containers
    from orchestrator.supervisor.observe import identity, project_containers

    containers = Containers(root)
    rows = []
    for container in project_containers(containers, name):
        ident = identity(container)
        rows.append(
            {
                **containers.status(container),
                "project": name,
                "service": ident.get("service"),
                "replica": ident.get("replica"),
                "health": None,
                "restart_count": None,
                "last_exit": None,
                "ports": [],
            }
        )
    return rows


def cmd_verb(args: argparse.Namespace) -> int:
    root = _root(args)
    name = _project_name(args)
    body = {"services": args.services, "timeout": getattr(args, "timeout", None)}
    document = _call(root, "POST", f"/v1/projects/{name}/{args.verb}", body)
    for key in ("stopped", "started"):
        for container in document.get(key, []):
            print(f" {container:30s} {key}", file=sys.stderr)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    root = _root(args)
    name = _project_name(args)
    tail = None if args.tail == "all" else int(args.tail)
    color = sys.stdout.isatty() and not args.no_color
    try:
        _follow_logs(root, name, args.services, tail, args.timestamps, color, follow=args.follow)
    except KeyboardInterrupt:
        return 0
    return 0


def _follow_logs(
    root: Path,
    project: str,
    services: list[str],
    tail: int | None,
    timestamps: bool,
    color: bool,
    follow: bool = True,
) -> None:
    """Each container's log, prefixed by its name; with ``follow``, new lines as they come,
    across restarts and recreations (new containers of the project are picked up)."""
    from orchestrator.containers import Containers
    from orchestrator.supervisor.observe import identity, project_containers
    from runtime import logs

    containers = Containers(root)
    tails: dict[str, tuple[str, Any]] = {}
    width = 0

    def prefix_of(container: Any) -> str:
        index = len(tails) % len(COLORS)
        text = f"{container.name} | "
        return f"\x1b[{COLORS[index]}m{text}\x1b[0m" if color else text

    def scan(first: bool) -> None:
        nonlocal width
        for container in project_containers(containers, project):
            if services and identity(container).get("service") not in services:
                continue
            if container.id in tails:
                continue
            prefix = prefix_of(container)
            width = max(width, len(container.name))
            entries = logs.read(container.log_path, tail) if first else []
            for entry in entries:
                _print_entry(prefix, entry, timestamps)
            size = container.log_path.stat().st_size if container.log_path.exists() else 0
            tails[container.id] = (prefix, logs.Tail(container.log_path, size if first else 0))

    scan(True)
    if not follow:
        return
    while True:
        for prefix, tailer in tails.values():
            for entry in tailer.read_new():
                _print_entry(prefix, entry, timestamps)
        time.sleep(0.1)
        scan(False)


def _print_entry(prefix: str, entry: Any, timestamps: bool) -> None:
    text = entry.text if entry.text.endswith("\n") else entry.text + "\n"
    sys.stdout.write(prefix + (f"{entry.time} " if timestamps else "") + text)
    sys.stdout.flush()
