"""Stack commands, Compose's: ``up``, ``down``, ``ls``, ``supervisor``, and with ``-f``/``-p``
the project's ``ps``, ``logs``, ``stop``, ``start``, ``restart``... (``run``, ``top``,
``stats``, ``port``, ``images`` and ``wait`` are in orchestrator.commands.stackverbs).

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
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import NotFoundError, UserError

STACK_ONLY = ("up", "down", "ls", "supervisor", "events", "scale")
SHARED = (
    *("ps", "logs", "stop", "start", "restart", "kill", "pause", "unpause", "rm", "exec"),
    *("run", "top", "stats", "port", "images", "wait"),  # (orchestrator.commands.stackverbs)
)
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
    down.add_argument("-v", "--volumes", action="store_true", help="remove named volumes too")
    down.add_argument(
        "--rmi",
        choices=("local", "all"),
        help="remove images too: local (built for services without an image name), all",
    )
    down.add_argument("--profile", action="append", dest="profiles", metavar="PROFILE")
    down.set_defaults(func=cmd_down)

    ls = sub.add_parser("ls", help="list the stacks that are up")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=cmd_ls)

    supervisor = sub.add_parser("supervisor", help="run the supervisor in the foreground")
    supervisor.set_defaults(func=cmd_supervisor)

    events = sub.add_parser("events", help="the stack's events as they happen")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.set_defaults(func=cmd_events)

    scale = sub.add_parser("scale", help="set the number of replicas of services")
    scale.add_argument("scale", nargs="+", metavar="SERVICE=N")
    scale.set_defaults(func=cmd_scale)

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
    logs.add_argument("-n", "--tail", default="all", help="the last N lines of each (default all)")
    logs.add_argument("--since", help="from a time (RFC 3339, Unix) or a duration before now")
    logs.add_argument("--until", help="up to a time (RFC 3339, Unix) or a duration before now")
    logs.add_argument("-t", "--timestamps", action="store_true")
    logs.add_argument("--no-color", action="store_true")
    logs.add_argument("services", nargs="*", metavar="SERVICE")
    logs.set_defaults(func=cmd_logs)

    for verb in ("stop", "start", "restart", "kill", "pause", "unpause", "rm"):
        p = sub.add_parser(verb, help=f"{verb} the stack's services")
        if verb in ("stop", "restart", "rm"):
            p.add_argument("-t", "--timeout", type=float, default=None)
        if verb == "kill":
            p.add_argument("-s", "--signal", default="SIGKILL")
        if verb == "rm":
            p.add_argument("-f", "--force", action="store_true", help="(no prompt is asked)")
            p.add_argument("-s", "--stop", action="store_true", help="stop running ones first")
            p.add_argument("-v", "--volumes", action="store_true", help="and anonymous volumes")
        p.add_argument("services", nargs="*", metavar="SERVICE")
        p.set_defaults(func=cmd_verb, verb=verb)

    ex = sub.add_parser("exec", help="run a command in a service's running container")
    ex.add_argument("-d", "--detach", action="store_true", help="run it in the background")
    ex.add_argument("-T", "--no-tty", action="store_true", help="no terminal (the default here)")
    ex.add_argument("-u", "--user")
    ex.add_argument("-w", "--workdir")
    ex.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    ex.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    ex.add_argument("service")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)

    create = sub.add_parser("create", help="create the stack's containers, not starting them")
    create.add_argument("--build", action="store_true", help="build images first")
    create.add_argument("--force-recreate", action="store_true")
    create.add_argument("--no-recreate", action="store_true")
    create.add_argument("--scale", action="append", default=[], metavar="SERVICE=N")
    create.add_argument("services", nargs="*", metavar="SERVICE")
    create.set_defaults(
        func=cmd_up,
        detach=True,
        no_start=True,
        wait=False,
        wait_timeout=120.0,
        no_deps=False,
        remove_orphans=False,
        dry_run=False,
        timeout=None,
        profiles=None,
    )

    only = getattr(sub, "name", None)  # (orchestrator.cli makes only that command's parser)
    if only is None or only in STACKVERBS:
        from orchestrator.commands import stackverbs

        stackverbs.add_parsers(sub)


# The verbs orchestrator.commands.stackverbs adds (its import is not paid for the others).
STACKVERBS = ("run", "top", "stats", "port", "images", "wait")


# -- helpers -------------------------------------------------------------------------------------


def _root(args: argparse.Namespace) -> Path:
    from orchestrator.paths import state_root

    return state_root(args.root)


def _socket(root: Path) -> Path:
    from orchestrator.supervisor import SOCKET_NAME

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
    """The project's name as Compose finds it (``-p``, COMPOSE_PROJECT_NAME, the files'
    ``name``, their folder), without loading the whole stack: ``ps``, ``logs`` and ``stop``
    need only that, and loading costs some 50 ms of imports."""
    from orchestrator.stack.units import UnitError, check_project_name, project_name_from_directory
    from orchestrator.stack.yamlsafe import read_yaml_file

    try:
        if args.project_name:
            return check_project_name(str(args.project_name))
        if os.environ.get("COMPOSE_PROJECT_NAME"):
            return check_project_name(os.environ["COMPOSE_PROJECT_NAME"])
        files = [Path(f) for f in args.files] or _default_files(Path.cwd())
        name = None
        for path in files:
            data = read_yaml_file(path).data
            value = data.get("name") if isinstance(data, dict) else None
            if isinstance(value, str) and value:
                name = value
        if name is not None and "$" in name:
            return str(_load(args).name)  # interpolated: the whole loader knows how
        if name is not None:
            return check_project_name(name)
        return project_name_from_directory(Path(os.path.abspath(files[0])).parent.name)
    except UnitError as exc:
        raise UserError(exc.message) from None


def _default_files(directory: Path) -> list[Path]:
    from orchestrator.stack.loader import find_stack_files

    return find_stack_files(directory)


def ensure_supervisor(root: Path, timeout: float = 15.0) -> None:
    """Start a supervisor for ``root`` in the background unless one answers."""
    from orchestrator.supervisor import httpclient as http

    sock = _socket(root)
    try:
        http.call(sock, "GET", "/v1/ping", timeout=5)
        return
    except http.Unreachable:
        pass
    import subprocess

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
    from orchestrator.supervisor import httpclient as http

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


def _project_spec(stack: Any, profiles: list[str], scale: dict[str, int]) -> dict[str, Any]:
    """What the supervisor needs to load the stack again after its own restart (its files,
    folder, the environment for interpolation, profiles, scale)."""
    return {
        "files": list(stack.files),
        "workdir": stack.project_dir,
        "environ": dict(os.environ),
        "profiles": profiles,
        "scale": scale,
    }


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
    from runtime.trace import mark

    mark("cli-up")
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
    spec = _project_spec(stack, list(args.profiles or ()), scale)
    ensure_supervisor(root)
    mark("cli-asks")
    failed = _stream_up(root, stack.name, {"spec": spec, "options": options})
    mark("cli-answered")
    if failed or args.detach:
        return 1 if failed else 0
    return _attached(args, root, stack)


def _stream_up(root: Path, project: str, body: dict[str, Any]) -> bool:
    """Print the progress of ``up``; True if anything failed."""
    from orchestrator.supervisor import httpclient as http

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
        _follow_logs(root, stack.name, [], None, timestamps=False, color=sys.stdout.isatty())
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
        body = {"timeout": args.timeout, "volumes": args.volumes}
        document = _call(root, "POST", f"/v1/projects/{name}/down", body)
    except UserError as exc:
        if "no supervisor" not in str(exc):
            raise
        return _down_without_supervisor(root, name)
    for removed in document["removed"]:
        print(f" {removed:30s} removed", file=sys.stderr)
    if getattr(args, "rmi", None):
        return _remove_images(root, args)
    return 0


def _remove_images(root: Path, args: argparse.Namespace) -> int:
    """``down --rmi``: the images of the stack's services (``local``: only those built for
    services that name no image, as Compose has it). One in use elsewhere stays, with a
    warning; one already gone is no error."""
    from orchestrator.paths import images_dir
    from runtime.errors import NotFound
    from runtime.image import ImageInUse
    from runtime.image.store import ImageStore

    stack = _load(args)
    names = []
    for service_name, service in stack.services.items():
        if service.image is None and service.build is not None:
            names.append(f"{stack.name}-{service_name}")
        elif args.rmi == "all" and service.image:
            names.append(service.image)
    store = ImageStore(images_dir(root))
    status = 0
    for name in dict.fromkeys(names):
        try:
            store.remove(name)
            print(f" image {name:24s} removed", file=sys.stderr)
        except NotFound:
            continue
        except ImageInUse as exc:
            print(f"orchestrator: warning: {exc}", file=sys.stderr)
            status = 1
    from orchestrator import mountpoints

    mountpoints.collect(root)
    return status


def _down_without_supervisor(root: Path, name: str) -> int:
    """Nothing to ask: remove what the project left (a supervisor that died, say)."""
    from orchestrator.containers import Containers
    from orchestrator.supervisor.observe import project_containers

    containers = Containers(root)
    for container in project_containers(containers, name, oneoffs=True):
        containers.remove(container, force=True)
        print(f" {container.name:30s} removed", file=sys.stderr)
    if (root / "networks").exists():
        from orchestrator.description import PROJECT_LABEL

        for network in containers.networks.prune({PROJECT_LABEL: name}):
            print(f" network {network:22s} removed", file=sys.stderr)
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
        rows = _record_rows(root, name)
    if args.all:  # one-off containers (`run`) too, as Compose lists them
        rows += _record_rows(root, name, oneoffs=True)
    rows = [r for r in rows if not args.services or r["service"] in args.services]
    if not args.all:
        rows = [r for r in rows if r["state"] in ("running", "paused", "restarting")]
    if args.quiet:
        print("\n".join(r["id"] for r in rows))
        return 0
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'NAME':28s} {'SERVICE':14s} {'STATE':10s} {'HEALTH':10s} {'RESTARTS':8s} {'EXIT':5s}"
        " PORTS"
    )
    for r in rows:
        exit_code = "" if r["exit_code"] is None else str(r["exit_code"])
        print(
            f"{r['name']:28s} {r['service']:14s} {r['state']:10s} {r['health'] or '':10s}"
            f" {r['restart_count']!s:8s} {exit_code:5s} {', '.join(r.get('ports') or [])}"
        )
    return 0


def _record_rows(root: Path, name: str, oneoffs: bool = False) -> list[dict[str, Any]]:
    """``ps`` rows read from the records and the kernel: the project's containers when no
    supervisor answers, or its one-off containers (``run``; ``ps -a`` lists them)."""
    from orchestrator.containers import Containers
    from orchestrator.supervisor.observe import identity, project_containers, project_oneoffs

    containers = Containers(root)
    chosen = project_oneoffs if oneoffs else project_containers
    rows = []
    for container in chosen(containers, name):
        ident = identity(container)
        rows.append(
            {
                **containers.status(container),
                "project": name,
                "service": ident.get("service"),
                "replica": None if oneoffs else ident.get("replica"),
                **({"oneoff": True} if oneoffs else {}),
                "health": None,
                "restart_count": 0 if oneoffs else None,
                "last_exit": None,
                "ports": [
                    f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.port}/{b.protocol}"
                    for b in containers.networks.bindings(container.id)
                ],
            }
        )
    return rows


def cmd_verb(args: argparse.Namespace) -> int:
    root = _root(args)
    name = _project_name(args)
    body: dict[str, Any] = {"services": args.services, "timeout": getattr(args, "timeout", None)}
    if args.verb == "kill":
        from runtime.spec import parse_signal

        try:
            body["signal"] = int(parse_signal(args.signal))
        except ValueError as exc:
            raise UserError(f"--signal: {exc}") from None
    if args.verb == "rm":
        body["stop"] = args.stop
    document = _call(root, "POST", f"/v1/projects/{name}/{args.verb}", body)
    for key in ("stopped", "started", "killed", "paused", "unpaused", "removed"):
        for container in document.get(key, []):
            print(f" {container:30s} {key}", file=sys.stderr)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from orchestrator import logview
    from orchestrator.timespec import parse_time

    root = _root(args)
    name = _project_name(args)
    selection = logview.Selection(
        logview.parse_tail(args.tail),
        parse_time(args.since, "--since") if args.since else None,
        parse_time(args.until, "--until") if args.until else None,
    )
    color = sys.stdout.isatty() and not args.no_color
    try:
        _follow_logs(
            root, name, args.services, selection, args.timestamps, color, follow=args.follow
        )
    except KeyboardInterrupt:
        return 0
    return 0


def _follow_logs(
    root: Path,
    project: str,
    services: list[str],
    selection: Any,
    timestamps: bool,
    color: bool,
    follow: bool = True,
) -> None:
    """Each container's log, prefixed by its name; with ``follow``, new lines as they come,
    across restarts and recreations (new containers of the project are picked up).
    ``selection``: which past lines (orchestrator.logview.Selection), None for all."""
    from orchestrator import logview
    from orchestrator.containers import Containers
    from orchestrator.supervisor.observe import identity, project_containers
    from runtime import logs

    containers = Containers(root)
    tails: dict[str, tuple[str, Any]] = {}
    choice = selection or logview.Selection()

    def prefix_of(container: Any) -> str:
        index = len(tails) % len(COLORS)
        text = f"{container.name} | "
        return f"\x1b[{COLORS[index]}m{text}\x1b[0m" if color else text

    def scan(first: bool) -> None:
        for container in project_containers(containers, project):
            if services and identity(container).get("service") not in services:
                continue
            if container.id in tails:
                continue
            prefix = prefix_of(container)
            entries = logview.read(container.log_path, choice) if first else []
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
                if choice.wanted(entry):
                    _print_entry(prefix, entry, timestamps)
        time.sleep(0.1)
        scan(False)


def _print_entry(prefix: str, entry: Any, timestamps: bool) -> None:
    text = entry.text if entry.text.endswith("\n") else entry.text + "\n"
    sys.stdout.write(prefix + (f"{entry.time} " if timestamps else "") + text)
    sys.stdout.flush()


def cmd_events(args: argparse.Namespace) -> int:
    from orchestrator.supervisor import httpclient as http

    root = _root(args)
    project = _project_name(args) if (args.files or args.project_name) else ""
    target = f"/v1/events?project={project}" if project else "/v1/events"
    try:
        for status, event in http.stream(_socket(root), "GET", target):
            if status >= 400:
                raise UserError(str(event.get("error")))
            if args.json:
                print(json.dumps(event), flush=True)
            else:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event["time"]))
                detail = f" ({event['detail']})" if event["detail"] else ""
                who = event["container"] or event["service"]
                print(f"{stamp} {event['project']} {who} {event['action']}{detail}", flush=True)
    except http.Unreachable:
        raise UserError("no supervisor runs for this state root (start one with `up`)") from None
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    root = _root(args)
    stack = _load(args)
    scale = _scale(args.scale, stack)
    spec = _project_spec(stack, [], scale)
    ensure_supervisor(root)
    options = {"services": sorted(scale), "no_deps": True}
    return 1 if _stream_up(root, stack.name, {"spec": spec, "options": options}) else 0


def _exec_in_background(argv: list[str], service: str) -> int:
    """``exec -d``: the same command without ``-d``, in a process of its own that nothing
    waits for (it waits for the command, which runs in the container; our stdio is not its)."""
    import subprocess

    from orchestrator.cli import _GLOBAL_WITH_VALUE

    verb = 0
    while verb < len(argv) and (
        argv[verb].startswith("-") or (verb > 0 and argv[verb - 1] in _GLOBAL_WITH_VALUE)
    ):
        verb += 1
    first = argv.index(service, verb + 1)  # (the options are before the service's name)
    options = [a for a in argv[verb + 1 : first] if a not in ("-d", "--detach")]
    rest = [*argv[: verb + 1], *options, *argv[first:]]
    subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *rest],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    """Run a command in a service's container (replica ``--index``), with our stdio; exit
    with its status."""
    from orchestrator.containers import Containers
    from orchestrator.supervisor.observe import identity, project_containers

    root = _root(args)
    name = _project_name(args)
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UserError("exec: give the command to run")
    if args.detach:
        return _exec_in_background(sys.argv[1:], args.service)
    containers = Containers(root)
    for container in project_containers(containers, name):
        ident = identity(container)
        if ident.get("service") == args.service and ident.get("replica") == args.index:
            return containers.exec(
                container, cmd, env=tuple(args.env), user=args.user, workdir=args.workdir
            )
    raise NotFoundError(f"service {args.service} has no container number {args.index}")
