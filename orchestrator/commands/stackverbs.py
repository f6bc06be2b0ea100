"""A stack's ``run``, ``top``, ``stats``, ``port``, ``images`` and ``wait`` (Compose's), with
``-f``/``-p`` before the verb:

    orchestrator -f stack.yaml run --rm web sh -c 'echo hi'   # a one-off container of web
    orchestrator -f stack.yaml top; orchestrator -f stack.yaml stats --no-stream
    orchestrator -f stack.yaml port web 80; orchestrator -f stack.yaml images
    orchestrator -f stack.yaml wait migrate

They read the containers' records and the kernel themselves (no supervisor needed); ``run``
asks the supervisor to bring the service's dependencies up first, as ``up -d DEPS`` would.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shlex
import sys
import threading
import time
from typing import Any

from orchestrator.commands import stack as st
from orchestrator.errors import NotFoundError, UserError

VERBS = ("run", "top", "stats", "port", "images", "wait")


def add_parsers(sub: Any) -> None:
    from orchestrator.commands.usage import add_stats_options

    p = sub.add_parser("run", help="run a one-off container of a service")
    p.add_argument("-d", "--detach", action="store_true", help="in the background; print its name")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--name", help="its name (default <project>-<service>-run-<id>)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-deps", action="store_true", help="do not start the dependencies")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOST:]PORT")
    p.add_argument("--service-ports", action="store_true", help="publish the service's ports")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="[SRC:]DST[:OPTS]")
    p.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true", help="no terminal")
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("--entrypoint", help="replace the service's entrypoint (a shell-like line)")
    p.add_argument(
        "--use-aliases",
        action="store_true",
        help="answer to the service's network aliases (its name among them) too",
    )
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("top", help="the processes of the stack's running containers")
    p.add_argument("services", nargs="*", metavar="SERVICE")
    p.set_defaults(func=cmd_top)

    p = sub.add_parser("stats", help="the stack's containers' CPU, memory, I/O and PIDs")
    add_stats_options(p)
    p.add_argument("services", nargs="*", metavar="SERVICE")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("port", help="the host address a service's port is published on")
    p.add_argument("--protocol", choices=("tcp", "udp"), default="tcp")
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("private_port", type=int, metavar="PRIVATE_PORT")
    p.set_defaults(func=cmd_port)

    p = sub.add_parser("images", help="the images the stack's containers use")
    p.add_argument("-q", "--quiet", action="store_true", help="image ids only")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("services", nargs="*", metavar="SERVICE")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("wait", help="wait for services' containers to stop; print exit codes")
    p.add_argument("--down-project", action="store_true", help="down the stack once one stops")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.set_defaults(func=cmd_wait, timeout=None, volumes=False)


# -- helpers -------------------------------------------------------------------------------------


def _containers(args: argparse.Namespace) -> Any:
    from orchestrator.containers import Containers

    return Containers(st._root(args))


def _of_services(containers: Any, project: str, services: list[str], oneoffs: bool) -> list[Any]:
    """The project's containers (with its one-offs or not) of ``services`` (all if empty); a
    service named that has none is an error."""
    from orchestrator.supervisor.observe import identity, project_containers

    found = [
        c
        for c in project_containers(containers, project, oneoffs)
        if not services or identity(c).get("service") in services
    ]
    have = {identity(c).get("service") for c in found}
    missing = [s for s in services if s not in have]
    if missing:
        raise NotFoundError(f"no container of service {missing[0]} in project {project}")
    return found


# -- run -----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator import oneoff
    from orchestrator.commands.containers import _open_log, _run_attached
    from orchestrator.containers import Containers

    root = st._root(args)
    stack = st._load(args)
    if args.service not in stack.services:
        raise UserError(f"no service {args.service!r} in the stack")
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    overrides = _overrides(args, cmd)
    _check_image(root, stack, args.service)
    if not args.no_deps and _start_dependencies(root, stack, args.service):
        return 1
    containers = Containers(root)
    networks = oneoff.prepare(root, containers, stack, args.service)
    name = args.name or oneoff.oneoff_name(stack.name, args.service)
    description = oneoff.describe(stack, args.service, overrides, name, networks)
    container = containers.create(description)
    if args.detach:
        try:
            containers.start(container)
        except BaseException:
            containers.remove(container, force=True, volumes=True)
            raise
        print(container.name)
        return 0
    from runtime.attach import window_size

    # Opened before the start: with --rm the monitor takes the container's files out of sight
    # before it tells the exit (as single-container run does).
    log = None if description.tty else _open_log(container.log_path)
    try:
        attached = containers.start(
            container, attach=True, terminal=window_size() if description.tty else None
        )
    except BaseException:
        if log is not None:
            log.close()
        containers.remove(container, force=True, volumes=True)
        raise
    assert attached is not None
    return _run_attached(args, containers, container, attached, log)


def _overrides(args: argparse.Namespace, cmd: list[str]) -> Any:
    from orchestrator.mountspec import from_flags
    from orchestrator.netflags import publish_of
    from orchestrator.oneoff import Overrides
    from orchestrator.stack.units import UnitError, parse_ports

    publish = []
    for spec in args.publish:
        try:
            publish += publish_of(parse_ports(spec))
        except (UnitError, ValueError) as exc:
            raise UserError(f"-p {spec}: {getattr(exc, 'message', exc)}") from None
    entrypoint = None
    if args.entrypoint is not None:
        try:
            entrypoint = tuple(shlex.split(args.entrypoint))
        except ValueError as exc:
            raise UserError(f"--entrypoint {args.entrypoint!r}: {exc}") from None
    for item in args.env:
        if not item.partition("=")[0]:
            raise UserError(f"-e {item!r}: expected KEY=VALUE")
    env = tuple(item if "=" in item else f"{item}={os.environ.get(item, '')}" for item in args.env)
    labels = dict(item.partition("=")[::2] for item in args.label)
    # Compose's defaults: stdin is passed on, and a terminal given when ours is one
    tty = not args.no_tty and not args.detach and os.isatty(0)
    return Overrides(
        command=tuple(cmd) or None,
        entrypoint=entrypoint,
        env=env,
        user=args.user,
        workdir=args.workdir,
        publish=tuple(publish),
        service_ports=args.service_ports,
        mounts=from_flags(args.volume, [], [], [])["mounts"],
        tty=tty,
        interactive=not args.detach,
        auto_remove=args.rm,
        labels=labels,
        use_aliases=args.use_aliases,
    )


def _check_image(root: Any, stack: Any, service_name: str) -> None:
    from orchestrator.paths import images_dir
    from runtime.errors import NotFound
    from runtime.image.store import ImageStore

    service = stack.services[service_name]
    image = service.image or f"{stack.name}-{service_name}"
    try:
        ImageStore(images_dir(root)).resolve(image)
    except NotFound:
        how = "build it with `up --build`" if service.build else "import, pull or build it"
        raise UserError(f"service {service_name}: image {image!r} not found ({how})") from None


def _start_dependencies(root: Any, stack: Any, service_name: str) -> bool:
    """``up -d`` of the service's dependencies through the supervisor, then wait for the
    conditions the service puts on them. True if that failed."""
    from orchestrator.stack.graph import DependencyGraph

    graph = DependencyGraph.from_services(stack.services)
    deps = [s for s in graph.closure([service_name]) if s != service_name]
    if not deps:
        return False
    st.ensure_supervisor(root)
    spec = st._project_spec(stack, list(stack.profiles) if hasattr(stack, "profiles") else [], {})
    options = {"services": deps, "no_deps": True}
    if st._stream_up(root, stack.name, {"spec": spec, "options": options}):
        return True
    for dep in stack.services[service_name].depends_on:
        if dep.service in stack.services:
            _wait_condition(root, stack.name, dep.service, dep.condition, dep.required)
    return False


def _wait_condition(
    root: Any, project: str, service: str, condition: str, required: bool, timeout: float = 120.0
) -> None:
    """Until ``service``'s containers meet ``condition`` (healthy, or exited with 0)."""
    if condition not in ("service_healthy", "service_completed_successfully"):
        return
    deadline = time.monotonic() + timeout
    while True:
        rows = [
            r
            for r in st._call(root, "GET", f"/v1/projects/{project}/containers")
            if r["service"] == service
        ]
        if condition == "service_healthy":
            if rows and all(r["health"] == "healthy" for r in rows):
                return
            bad = [r for r in rows if r["state"] == "exited" or r["health"] == "unhealthy"]
        else:
            if rows and all(r["state"] == "exited" and r["exit_code"] == 0 for r in rows):
                return
            bad = [r for r in rows if r["state"] == "exited" and r["exit_code"] != 0]
        if bad and required:
            raise UserError(f"dependency {service}: {bad[0]['name']} is {bad[0]['state']}")
        if time.monotonic() > deadline:
            if not required:
                return
            raise UserError(f"dependency {service}: {condition} not met after {timeout:g}s")
        time.sleep(0.1)


# -- top, stats ----------------------------------------------------------------------------------


def cmd_top(args: argparse.Namespace) -> int:
    from orchestrator.commands.usage import show_top
    from orchestrator.errors import ConflictError

    containers = _containers(args)
    project = st._project_name(args)
    chosen = _of_services(containers, project, args.services, oneoffs=True)
    first = True
    for container in chosen:
        try:
            text = show_top(containers, container, [])
        except ConflictError:
            continue  # (not running: Compose lists running ones)
        sys.stdout.write(("" if first else "\n") + container.name + "\n" + text)
        first = False
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from orchestrator.commands.usage import show_stats

    containers = _containers(args)
    project = st._project_name(args)

    def choose() -> list[Any]:
        chosen = _of_services(containers, project, args.services, oneoffs=True)
        return chosen if args.all else [c for c in chosen if containers.is_running(c)]

    return show_stats(containers, choose, args)


# -- port, images, wait --------------------------------------------------------------------------


def cmd_port(args: argparse.Namespace) -> int:
    from orchestrator.supervisor.observe import identity

    containers = _containers(args)
    project = st._project_name(args)
    for container in _of_services(containers, project, [args.service], oneoffs=False):
        if identity(container).get("replica") != args.index:
            continue
        bindings = containers.networks.bindings(container.id)
        for b in bindings:
            if b.port == args.private_port and b.protocol == args.protocol:
                print(f"{b.host_ip or '0.0.0.0'}:{b.host_port}")
                return 0
        published = ", ".join(f"{b.port}/{b.protocol}" for b in bindings) or "none"
        raise NotFoundError(
            f"no port {args.private_port}/{args.protocol} for container {container.name}:"
            f" {published}"
        )
    raise NotFoundError(f"service {args.service} has no container number {args.index}")


def cmd_images(args: argparse.Namespace) -> int:
    from orchestrator.paths import images_dir
    from orchestrator.stats import decimal_size
    from runtime.errors import NotFound
    from runtime.image.store import ImageStore

    containers = _containers(args)
    project = st._project_name(args)
    store = ImageStore(images_dir(containers.root))
    rows = []
    for container in _of_services(containers, project, args.services, oneoffs=True):
        repository, tag = split_reference(str(container.record.get("image") or ""))
        image_id = str(container.record.get("image_id") or "")
        try:
            size = int(store.resolve(image_id).size)
        except NotFound:  # (removed since: what the record knows)
            size = 0
        rows.append(
            {
                "ContainerName": container.name,
                "Repository": repository,
                "Tag": tag,
                "ID": image_id,
                "Size": size,
            }
        )
    rows.sort(key=lambda r: str(r["ContainerName"]))
    if args.quiet:
        for image_id in dict.fromkeys(str(r["ID"]) for r in rows):
            print(image_id)
        return 0
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    table = [["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]]
    for r in rows:
        short = str(r["ID"]).removeprefix("sha256:")[:12]
        table.append(
            [
                str(r["ContainerName"]),
                str(r["Repository"]),
                str(r["Tag"]),
                short,
                decimal_size(int(r["Size"])),
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    return 0


def split_reference(reference: str) -> tuple[str, str]:
    """An image reference's repository and tag (``<none>`` for a digest; ``latest`` when
    none is given)."""
    if "@" in reference:
        return reference.partition("@")[0], "<none>"
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def cmd_wait(args: argparse.Namespace) -> int:
    """Until the services' running containers stop (the first, with --down-project, which
    then takes the stack down): each one's exit code, Compose's way; the last one's is our
    exit status."""
    containers = _containers(args)
    project = st._project_name(args)
    chosen = [
        c
        for c in _of_services(containers, project, args.services, oneoffs=True)
        if containers.is_running(c)
    ]
    if not chosen:
        raise NotFoundError(f"no running containers of {', '.join(args.services)} in {project}")
    ended: queue.Queue[tuple[Any, dict[str, Any] | BaseException]] = queue.Queue()

    def wait(container: Any) -> None:
        try:
            ended.put((container, containers.wait(container)))
        except BaseException as exc:  # (reported below, from the main thread)
            ended.put((container, exc))

    for container in chosen:
        threading.Thread(target=wait, args=(container,), daemon=True).start()
    status = 0
    try:
        for _ in chosen:
            container, result = ended.get()
            if isinstance(result, BaseException):
                print(f"orchestrator: {container.name}: {result}", file=sys.stderr)
                status = 1
            else:
                code = result.get("exit_code")
                status = 1 if code is None else int(code)
                print(f'container "{container.id}" exited with status code {code}', flush=True)
            if args.down_project:
                st.cmd_down(args)
                break
    except KeyboardInterrupt:
        return 130
    return status
