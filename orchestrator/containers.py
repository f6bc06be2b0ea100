"""Containers made from images: records, bundles and their lifecycle (what ``orchestrator run``
and later the supervisor use).

A container lives in ``<root>/containers/<id>/``::

    container.json    the record: name, image, the options it was made with, created time
    bundle/           the OCI bundle: config.json (rootfs is mounted at bundle/rootfs inside
                      the container's own mount namespace, never on the host)
    upper/, work/     the container's writable overlay layer
    hosts, hostname, resolv.conf   bind-mounted into the container
    container.log     its output, JSON lines, rotated

The runtime's state for a started container is ``<root>/runtime/<id>/``; the kernel and that
state say whether it runs. ``create`` writes the record and the bundle only, as Docker's create
does; ``start`` runs it (again, for a stopped one: its writable layer persists).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ConflictError, NotFoundError, UserError
from orchestrator.paths import containers_dir, images_dir, runtime_dir
from runtime import state as rstate
from runtime.errors import NotFound, StateError

ANNOTATION_NAME = "org.orchestrator.container.name"
ANNOTATION_IMAGE = "org.orchestrator.container.image"
STOP_SIGNAL_ANNOTATION = "org.opencontainers.image.stopSignal"


@dataclass(frozen=True)
class ContainerOptions:
    """What a user asks for; the image's config fills in what is left out."""

    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    name: str | None = None
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    hostname: str | None = None
    network: str = "none"
    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    auto_remove: bool = False
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    stop_timeout: float = 10.0
    tty: bool = False
    interactive: bool = False
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    directory: Path
    record: dict[str, Any]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def options(self) -> ContainerOptions:
        raw = dict(self.record["options"])
        for key in ("command", "entrypoint"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        for key in ("env", "cap_add", "cap_drop"):
            raw[key] = tuple(raw.get(key) or ())
        return ContainerOptions(**raw)

    @property
    def log_path(self) -> Path:
        return self.directory / "container.log"

    @property
    def bundle(self) -> Path:
        return self.directory / "bundle"


@dataclass
class Attached:
    """Sockets to a container, connected before it started."""

    waiter: Any  # the exit record arrives on it
    console: Any = None  # joined to its terminal (-t)
    stdin: Any = None  # what we send is its stdin (-i without -t)


class Containers:
    """The containers under one state root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory = containers_dir(root)
        self._runtime: Any = None

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from runtime.api import Runtime

            self._runtime = Runtime(runtime_dir(self.root), fork_server=True)
        return self._runtime

    def _lock(self) -> AbstractContextManager[None]:
        from runtime.filelock import exclusive

        return exclusive(self.directory / ".lock")

    # lookup ------------------------------------------------------------------------------------

    def all(self) -> list[Container]:
        if not self.directory.is_dir():
            return []
        result = []
        for entry in sorted(self.directory.iterdir()):
            record_path = entry / "container.json"
            try:
                record = json.loads(record_path.read_text())
            except (OSError, ValueError):
                continue
            result.append(Container(record["id"], record["name"], entry, record))
        return sorted(result, key=lambda c: c.record.get("created", ""))

    def get(self, name_or_id: str) -> Container:
        matches = []
        for container in self.all():
            if name_or_id in (container.name, container.id):
                return container
            if len(name_or_id) >= 3 and container.id.startswith(name_or_id):
                matches.append(container)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UserError(f"container id prefix {name_or_id!r} is ambiguous")
        raise NotFoundError(f"no such container: {name_or_id}")

    # create ------------------------------------------------------------------------------------

    def create(self, options: ContainerOptions) -> Container:
        from runtime.image.store import ImageStore

        store = ImageStore(images_dir(self.root))
        try:
            image = store.resolve(options.image)
        except NotFound as exc:
            raise NotFoundError(f"{exc}") from None
        if options.network not in ("none", "host"):
            raise UserError(
                f"--network {options.network}: only 'none' and 'host' are supported so far"
            )
        with self._lock():
            name = options.name or _random_name(self)
            if options.name:
                _check_name(options.name)
                if any(c.name == name for c in self.all()):
                    raise ConflictError(f"the container name {name!r} is already in use")
            container_id = secrets.token_hex(32)
            directory = self.directory / container_id
            directory.mkdir()
            try:
                for sub in ("upper", "work", "bundle/rootfs"):
                    (directory / sub).mkdir(parents=True)
                record = {
                    "id": container_id,
                    "name": name,
                    "created": _now(),
                    "image": options.image,
                    "image_id": image.id,
                    "options": asdict(options),
                }
                spec = self._build_spec(container_id, name, directory, options, image, store)
                (directory / "bundle" / "config.json").write_text(json.dumps(spec, indent=1))
                rstate.write_json_atomic(directory / "container.json", record)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
        return Container(container_id, name, directory, record)

    def _build_spec(
        self,
        container_id: str,
        name: str,
        directory: Path,
        options: ContainerOptions,
        image: Any,
        store: Any,
    ) -> dict[str, Any]:
        from runtime.linux import caps
        from runtime.spec import (
            ANNOTATION_LOWERDIRS,
            ANNOTATION_UPPERDIR,
            ANNOTATION_USER,
            ANNOTATION_WORKDIR,
        )
        from runtime.specgen import default_spec

        args = _command(options, image)
        env = _merge_env(image.env, options.env)
        hostname = options.hostname or container_id[:12]
        spec = default_spec(
            args,
            rootfs="rootfs",
            env=env,
            cwd=options.workdir or image.working_dir or "/",
            hostname=hostname if options.network != "host" else None,
            network=options.network != "host",
        )
        user = options.user if options.user is not None else image.user
        if user:
            spec["annotations"][ANNOTATION_USER] = user
        spec["root"]["readonly"] = options.read_only
        # Docker's order: the default set, less what is dropped, plus what is added.
        capabilities = set(caps.DOCKER_DEFAULT)
        try:
            if "ALL" in (c.upper() for c in options.cap_drop):
                capabilities = set()
            else:
                capabilities -= set(caps.names_of(caps.mask(list(options.cap_drop))))
            if "ALL" in (c.upper() for c in options.cap_add):
                capabilities = set(caps.NAMES)
            else:
                capabilities |= set(caps.names_of(caps.mask(list(options.cap_add))))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        capability_list = sorted(capabilities, key=caps.NUMBERS.__getitem__)
        for key in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"][key] = capability_list
        spec["process"]["noNewPrivileges"] = options.no_new_privileges
        spec["process"]["terminal"] = options.tty
        if options.tty:
            spec["process"]["env"].append("TERM=xterm")
        spec["linux"]["resources"].update(_resources(options))
        lowers = [str(p) for p in store.layer_dirs(image)]
        if not lowers:
            raise UserError(f"image {options.image} has no layers to run")
        stop_signal = options.stop_signal or image.stop_signal
        spec["annotations"].update(
            {
                ANNOTATION_LOWERDIRS: json.dumps(lowers),
                ANNOTATION_UPPERDIR: str(directory / "upper"),
                ANNOTATION_WORKDIR: str(directory / "work"),
                ANNOTATION_NAME: name,
                ANNOTATION_IMAGE: options.image,
            }
        )
        if stop_signal:
            spec["annotations"][STOP_SIGNAL_ANNOTATION] = stop_signal
        if options.network != "host":
            _write_network_files(directory, hostname)
            for file in ("hosts", "hostname", "resolv.conf"):
                spec["mounts"].append(
                    {
                        "destination": f"/etc/{file}",
                        "type": "bind",
                        "source": str(directory / file),
                        "options": ["rbind", "rprivate"],
                    }
                )
        return spec

    # lifecycle ---------------------------------------------------------------------------------

    def start(
        self, container: Container, attach: bool = False, terminal: tuple[int, int] | None = None
    ) -> Attached | None:
        """Start the container. With ``attach``, the sockets it needs are connected before the
        start, so that not even the quickest exit goes unheard: the exit record's, the terminal's
        when it has one (``terminal`` is our rows and columns), its stdin's for ``-i``."""
        try:
            current = self.runtime.state(container.id)
        except NotFound:
            current = None
        if current is not None:
            if current.status != rstate.STOPPED:
                raise ConflictError(f"container {container.name} is already {current.status}")
            self.runtime.delete(container.id)
        options = container.options
        cleanup = (str(container.directory),) if options.auto_remove else ()
        takes_stdin = options.interactive and not options.tty
        launch = self.runtime.create if attach else self.runtime.run
        launch(
            container.id,
            container.bundle,
            log_path=str(container.log_path),
            log_max_size=options.log_max_size,
            log_max_files=options.log_max_files,
            cleanup_paths=cleanup,
            stdin=takes_stdin,
        )
        if not attach:
            return None
        attached = Attached(self.runtime.connect_waiter(container.id))
        if terminal and options.tty:
            attached.console = self.runtime.attach(container.id, *terminal)
        if takes_stdin:
            attached.stdin = self.runtime.feed_stdin(container.id)
        self.runtime.start(container.id)
        return attached

    def status(self, container: Container) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": container.id,
            "name": container.name,
            "image": container.record.get("image"),
            "image_id": container.record.get("image_id"),
            "command": _display_command(container),
            "created": container.record.get("created"),
            "state": "created",
            "pid": 0,
            "exit_code": None,
            "oom_killed": False,
            "started": None,
            "finished": None,
        }
        try:
            current = self.runtime.state(container.id)
        except NotFound:
            return info
        details = current.details()
        state = {"stopped": "exited"}.get(current.status, current.status)
        info.update(
            state=state,
            pid=details["pid"] if current.status in ("running", "paused") else 0,
            exit_code=details.get("exit_code"),
            oom_killed=bool(details.get("oom_killed")),
            started=details.get("started"),
            finished=details.get("finished"),
        )
        return info

    def is_running(self, container: Container) -> bool:
        return str(self.status(container)["state"]) in ("running", "paused")

    def wait(self, container: Container) -> dict[str, Any]:
        result = self.runtime.wait(container.id) or {}
        return dict(result)

    def stop(self, container: Container, timeout: float | None = None) -> None:
        try:
            self.runtime.stop(
                container.id, container.options.stop_timeout if timeout is None else timeout
            )
        except NotFound:
            pass  # never started

    def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        try:
            self.runtime.kill(container.id, sig)
        except NotFound:
            raise ConflictError(f"container {container.name} is not running") from None
        except StateError:
            raise ConflictError(f"container {container.name} is not running") from None

    def exec(
        self,
        container: Container,
        args: list[str],
        env: tuple[str, ...] = (),
        user: str | None = None,
        workdir: str | None = None,
        stdin: int = 0,
        tty: tuple[int, int] | None = None,
        interactive: bool = False,
    ) -> int:
        """Run ``args`` in the running container with our stdio (``stdin`` for input), through
        a terminal of ``tty`` rows and columns if given; its exit status."""
        try:
            return int(
                self.runtime.exec(
                    container.id,
                    args,
                    env=env,
                    user=user,
                    cwd=workdir,
                    stdio=(stdin, 1, 2),
                    tty=tty is not None,
                    interactive=interactive,
                    window=tty or (24, 80),
                )
            )
        except (NotFound, StateError):
            raise ConflictError(f"container {container.name} is not running") from None

    def pause(self, container: Container) -> None:
        self._transition(container, self.runtime.pause)

    def unpause(self, container: Container) -> None:
        self._transition(container, self.runtime.resume)

    def _transition(self, container: Container, operation: Any) -> None:
        try:
            operation(container.id)
        except (NotFound, StateError) as exc:
            state = exc.state if isinstance(exc, StateError) else "created"
            raise ConflictError(f"container {container.name} is {state}") from None

    def remove(self, container: Container, force: bool = False) -> None:
        with self._lock():
            try:
                current = self.runtime.state(container.id)
            except NotFound:
                current = None
            if current is not None:
                if current.status in ("running", "paused", "created") and not force:
                    raise ConflictError(
                        f"container {container.name} is {current.status}: stop it first or use -f"
                    )
                self.runtime.delete(container.id, force=True)
            shutil.rmtree(container.directory, ignore_errors=True)


def image_ids_in_use(root: Path) -> set[str]:
    """Image ids (``sha256:...``) that some container was made from (``rmi`` refuses those)."""
    return {str(c.record.get("image_id")) for c in Containers(root).all()}


def _command(options: ContainerOptions, image: Any) -> list[str]:
    entrypoint = (
        list(options.entrypoint) if options.entrypoint is not None else (image.entrypoint or [])
    )
    if options.command:
        cmd = list(options.command)
    elif options.entrypoint is not None:
        cmd = []  # a new entrypoint drops the image's Cmd, as in Docker
    else:
        cmd = image.cmd or []
    args = entrypoint + cmd
    if not args:
        raise UserError(f"image {options.image} has no command: give one after the image name")
    return args


def _merge_env(image_env: list[str], extra: tuple[str, ...]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *extra]:
        key, sep, value = item.partition("=")
        if not key or "\0" in item:
            raise UserError(f"invalid environment variable {item!r}")
        if not sep:
            host_value = os.environ.get(key)
            if host_value is None:
                continue  # `-e NAME` with NAME unset: left out, as Docker does
            value = host_value
        merged[key] = value
    merged.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return [f"{k}={v}" for k, v in merged.items()]


def _resources(options: ContainerOptions) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if options.memory is not None:
        memory["limit"] = options.memory
        # Docker's default: as much swap as memory, unless told otherwise.
        memory["swap"] = (
            options.memory_swap if options.memory_swap is not None else options.memory * 2
        )
    if options.memory_reservation is not None:
        memory["reservation"] = options.memory_reservation
    if memory:
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    if options.cpus is not None:
        if options.cpus <= 0:
            raise UserError("--cpus must be more than 0")
        cpu["period"] = 100_000
        cpu["quota"] = max(1000, int(options.cpus * 100_000))
    if options.cpu_shares is not None:
        cpu["shares"] = options.cpu_shares
    if cpu:
        resources["cpu"] = cpu
    if options.pids_limit is not None:
        resources["pids"] = {"limit": options.pids_limit}
    return resources


def _write_network_files(directory: Path, hostname: str) -> None:
    hosts = (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n"
        f"127.0.1.1\t{hostname}\n"
    )
    (directory / "hosts").write_text(hosts)
    (directory / "hostname").write_text(hostname + "\n")
    (directory / "resolv.conf").write_text("# no network: no name servers\n")


def _check_name(name: str) -> None:
    from orchestrator.stack.units import UnitError, check_container_name

    try:
        check_container_name(name)
    except UnitError as exc:
        raise UserError(exc.message.replace("container_name", "--name")) from None


_ADJECTIVES = (
    "brave",
    "calm",
    "eager",
    "fond",
    "keen",
    "lucid",
    "merry",
    "proud",
    "quiet",
    "swift",
)
_NOUNS = ("otter", "heron", "lynx", "finch", "badger", "marten", "ibis", "newt", "wren", "yak")


def _random_name(containers: Containers) -> str:
    taken = {c.name for c in containers.all()}
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.randbelow(1000)}"
        if name not in taken:
            return name


def _display_command(container: Container) -> str:
    options = container.record.get("options", {})
    parts = list(options.get("entrypoint") or []) + list(options.get("command") or [])
    return " ".join(parts)


def _now() -> str:
    from runtime.logs import timestamp

    return timestamp()
