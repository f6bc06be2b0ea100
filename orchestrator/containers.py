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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator import description as description_module
from orchestrator import eventlog, mountplan, mountpoints
from orchestrator.description import RECORD_VERSION, ContainerDescription
from orchestrator.errors import ConflictError, NotFoundError, UserError
from orchestrator.mountplan import MountPlan
from orchestrator.paths import containers_dir, images_dir, runtime_dir
from orchestrator.volumes import Volumes
from runtime import state as rstate
from runtime.errors import NotFound, StateError
from runtime.linux.topdir import mark_top

# Kept for importers; the description module owns them.
ANNOTATION_NAME = description_module.ANNOTATION_NAME
ANNOTATION_IMAGE = description_module.ANNOTATION_IMAGE


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    directory: Path
    record: dict[str, Any]
    # its options parsed once (Containers.all keeps them with the record it read)
    parsed: ContainerDescription | None = field(default=None, compare=False, repr=False)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def options(self) -> ContainerDescription:
        if self.parsed is not None:
            return self.parsed
        return ContainerDescription.from_record(self.record["options"])

    @property
    def broken(self) -> str | None:
        """Why its record (container.json) cannot be read; None for a sound one. A broken
        container is never listed as usual, but ``rm -f`` still removes all it owns."""
        reason = self.record.get("broken")
        return str(reason) if reason else None

    @property
    def complete(self) -> bool:
        """False for a container whose creation has not finished (or never will: its creator
        died, which ``Containers.all`` sees and collects)."""
        return bool(self.record.get("state", "created") == "created")

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
        self.broken: list[Container] = []  # records ``all`` could not read (last call)
        # Records read before, by directory name: (the file's identity, record). A long-lived
        # reader (the supervisor) parses only what changed since (an ``up`` of 50 services
        # otherwise reads every record again for each name it takes).
        self._read: dict[
            str, tuple[tuple[int, int, int], dict[str, Any], ContainerDescription]
        ] = {}
        self._paths: dict[str, Path] = {}  # (each directory's Path, made once)
        self._spread = False  # whether containers/ is marked to spread its subdirectories

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from runtime.api import Runtime

            self._runtime = Runtime(runtime_dir(self.root), fork_server=True)
        return self._runtime

    @property
    def networks(self) -> Any:
        """The state root's networks (orchestrator.networks.Networks)."""
        if getattr(self, "_networks", None) is None:
            from orchestrator.networks import Networks

            self._networks = Networks(self.root, self)
        return self._networks

    def _lock(self) -> AbstractContextManager[None]:
        from runtime.filelock import exclusive

        return exclusive(self.directory / ".lock")

    # lookup ------------------------------------------------------------------------------------

    def all(self) -> list[Container]:
        """Every container, oldest first. One whose creation was cut short (its creator
        killed) is collected here, once its creator is seen dead: it never blocks its name."""
        self.broken = []
        try:
            with os.scandir(self.directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except FileNotFoundError:
            return []
        # (what the caches hold of containers gone goes: a supervisor lives long)
        present = {entry.name for entry in entries}
        for cache in (self._read, self._paths):
            for gone in set(cache) - present:
                del cache[gone]
        result = []
        for entry in entries:
            if entry.name.startswith(".removed-"):
                _collect_removed(Path(entry.path))  # a removal under way, or one cut short
                continue
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            directory = self._paths.get(entry.name)
            if directory is None:
                directory = self._paths[entry.name] = Path(entry.path)
            try:
                record, parsed = self._record(entry.name, entry.path + "/container.json")
                container = Container(record["id"], record["name"], directory, record, parsed)
            except FileNotFoundError:
                if not self._collect_recordless(directory) and not _young(directory):
                    self.broken.append(self._broken(directory, "no container.json"))
                continue  # (a creation that has not written it yet)
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else f"{type(exc).__name__}"
                self.broken.append(self._broken(directory, f"unreadable container.json ({reason})"))
                continue
            if not container.complete and _creator_gone(record):
                self._collect(container)
                continue
            if parsed.auto_remove and self._abandoned(container):
                self.remove(container, force=True)  # --rm, its monitor killed: we remove it
                continue
            result.append(container)
        return sorted(result, key=lambda c: c.record.get("created", ""))

    def _record(self, key: str, path: str) -> tuple[dict[str, Any], ContainerDescription]:
        """A container.json, parsed and checked (its options make a description); from the
        cache when the file is the same one, unchanged (records are replaced, never edited in
        place). The record is a copy: callers may change theirs."""
        info = os.stat(path)
        identity = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._read.get(key)
        if cached is not None and cached[0] == identity:
            return dict(cached[1]), cached[2]
        with open(path, "rb") as file:
            record = json.loads(file.read())
        parsed = ContainerDescription.from_record(record["options"])
        self._read[key] = (identity, record, parsed)
        return dict(record), parsed

    def _collect_recordless(self, directory: Path) -> bool:
        """A directory without a record, while nobody holds the lock: its creator was killed
        between making it and writing the record (both under the lock). Remove it."""
        from runtime.filelock import open_lock, try_lock

        fd = open_lock(self.directory / ".lock")
        try:
            if not try_lock(fd) or (directory / "container.json").exists():
                return False
            if (runtime_dir(self.root) / directory.name).exists():
                return False
            shutil.rmtree(directory, ignore_errors=True)
            return True
        finally:
            os.close(fd)

    def _broken(self, directory: Path, reason: str) -> Container:
        """A container whose record cannot be read, named by its runtime state if that can."""
        name = directory.name[:12]
        try:
            current = rstate.load(runtime_dir(self.root), directory.name)
            name = current.record.get("annotations", {}).get(ANNOTATION_NAME) or name
        except Exception:
            pass
        return Container(directory.name, name, directory, {"id": directory.name, "broken": reason})

    def _abandoned(self, container: Container) -> bool:
        """Whether the container has ended with its monitor killed (nobody else removes it)."""
        try:
            current = rstate.load(runtime_dir(self.root), container.id)
        except Exception:
            return False
        return current.status == rstate.STOPPED and not current.exit and not current.monitor_alive

    def warn_broken(self) -> None:
        """Name each broken container on stderr (listings go on without them)."""
        import sys

        for c in self.broken:
            print(
                f"orchestrator: warning: container {c.id[:12]} ({c.name}): {c.record['broken']};"
                f" `rm -f {c.id[:12]}` removes it",
                file=sys.stderr,
            )

    def _collect(self, container: Container) -> None:
        """Remove what a creation cut short left: the runtime's state, if it got that far."""
        try:
            self.runtime.delete(container.id, force=True)
        except NotFound:
            pass
        except Exception:
            return  # try again next time rather than lose track of a process
        shutil.rmtree(container.directory, ignore_errors=True)

    def get(self, name_or_id: str) -> Container:
        matches = []
        for container in self.all():
            if name_or_id in (container.name, container.id):
                return container
            if len(name_or_id) >= 3 and container.id.startswith(name_or_id):
                matches.append(container)
        if not matches:
            for container in self.broken:
                if name_or_id in (container.name, container.id) or (
                    len(name_or_id) >= 3 and container.id.startswith(name_or_id)
                ):
                    matches.append(container)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UserError(f"container id prefix {name_or_id!r} is ambiguous")
        raise NotFoundError(f"no such container: {name_or_id}")

    # create ------------------------------------------------------------------------------------

    def create(self, options: ContainerDescription, refresh_peers: bool = True) -> Container:
        """Create the container ``options`` describes. Without ``refresh_peers``, the hosts
        files of the containers on its networks are not rewritten to name it: the caller
        creating many does it once (``networks.refresh_hosts``)."""
        from orchestrator.bundle import RootFilesystem, build_spec
        from runtime.image.store import ImageStore

        store = ImageStore(images_dir(self.root))
        try:
            image = store.resolve(options.image)
        except NotFound as exc:
            raise NotFoundError(f"{exc}") from None
        Volumes(self.root).collect()  # anonymous volumes of --rm containers that have gone
        # Under the lock only the name is taken: a record marked as being created by us (if we
        # are killed from here on, the next command sees whose it was, and collects it). The
        # rest goes on outside it, so that creations run side by side.
        with self._lock():
            if not self._spread:  # (see runtime.linux.topdir)
                mark_top(self.directory)
                self._spread = True
            name = options.name or _random_name(self)
            if options.name:
                _check_name(options.name)
                taken = [c.name for c in self.all()] + [c.name for c in self.broken]
                if name in taken:  # (all() collects dead creations)
                    raise ConflictError(f"the container name {name!r} is already in use")
            container_id = secrets.token_hex(32)
            directory = self.directory / container_id
            directory.mkdir()
            record: dict[str, Any] = {
                "version": RECORD_VERSION,
                "state": "creating",
                "creator": [os.getpid(), rstate.process_start_time(os.getpid())],
                "id": container_id,
                "name": name,
                "created": _now(),
                "image": options.image,
                "image_id": image.id,
                "options": options.to_record(),
                # the check the supervisor runs (orchestrator.keep): the flags over the image's
                "healthcheck": effective_healthcheck(image.healthcheck, options.healthcheck),
            }
            try:
                rstate.write_json_atomic(directory / "container.json", record)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
        plan: MountPlan | None = None
        try:
            for sub in ("upper", "work", "bundle/rootfs"):
                (directory / sub).mkdir(parents=True)
            image_layers = tuple(str(p) for p in store.layer_dirs(image))
            points = mountpoints.layer(self.root, image.id, image_layers)
            rootfs = RootFilesystem(
                (*image_layers, points) if points else image_layers,
                str(directory / "upper"),
                str(directory / "work"),
            )
            # Volumes made (and filled from the image), binds checked: the record says
            # which, so that `volume rm` sees them in use from here on.
            plan = mountplan.prepare(
                self.root, options, image, [Path(p) for p in image_layers], container_id
            )
            record["mounts"] = plan.records()
            options = replace(options, mounts=plan.mounts, volumes_from=())
            network = self.networks.reserve(container_id, name, options, image, refresh_peers)
            spec = build_spec(container_id, name, directory, options, image, rootfs, network)
            (directory / "bundle" / "config.json").write_text(json.dumps(spec))
            record["state"] = "created"
            del record["creator"]
            rstate.write_json_atomic(directory / "container.json", record)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            if plan is not None:
                plan.undo()
            if self._networks_used(options):
                self.networks.release(container_id)
            raise
        eventlog.note(self.root, "create", Container(container_id, name, directory, record))
        return Container(container_id, name, directory, record)

    @staticmethod
    def _networks_used(options: ContainerDescription) -> bool:
        return options.network not in ("none", "host")

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
        mountplan.check_sources(container.record, container.name)
        cleanup = (str(container.directory),) if options.auto_remove else ()
        takes_stdin = options.interactive and not options.tty
        from orchestrator.netconfig import JOIN_PREFIXES, is_bridged

        if options.network.startswith(JOIN_PREFIXES):
            _join_network(container.bundle, self.networks.join_path(options))
        wire = is_bridged(options.network)  # created, wired, then started
        launch = self.runtime.create if attach or wire else self.runtime.run
        launch(
            container.id,
            container.bundle,
            log_path=str(container.log_path),
            log_max_size=options.log_max_size,
            log_max_files=options.log_max_files,
            cleanup_paths=cleanup,
            stdin=takes_stdin,
        )
        if wire:
            try:
                self.networks.attach(container.id, options)
            except BaseException:
                self.runtime.delete(container.id, force=True)
                raise
            if not attach:
                self.runtime.start(container.id)
        eventlog.note(self.root, "start", container)
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
            "state": "created" if container.complete else "creating",
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
        except rstate.Unreadable as exc:
            return dict(info, state="unknown", error=str(exc))
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
        if "exit_unknown" in details:
            info["exit_unknown"] = details["exit_unknown"]
        return info

    def is_running(self, container: Container) -> bool:
        return str(self.status(container)["state"]) in ("running", "paused")

    def wait(self, container: Container) -> dict[str, Any]:
        result = self.runtime.wait(container.id) or {}
        eventlog.died(self.root, container, result)
        return dict(result)

    def stop(self, container: Container, timeout: float | None = None) -> None:
        try:
            self.runtime.stop(
                container.id, container.options.stop_timeout if timeout is None else timeout
            )
            eventlog.stopped(self, container)
        except NotFound:
            pass  # never started

    def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        try:
            paused = self.runtime.state(container.id).status == rstate.PAUSED
            self.runtime.kill(container.id, sig)
            eventlog.note(self.root, "kill", container, signal=int(sig))
            if paused:  # a frozen process takes no signal: thaw it, as Docker does
                self.runtime.resume(container.id)
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
        eventlog.note(self.root, "pause", container)

    def unpause(self, container: Container) -> None:
        self._transition(container, self.runtime.resume)
        eventlog.note(self.root, "unpause", container)

    def _transition(self, container: Container, operation: Any) -> None:
        try:
            operation(container.id)
        except (NotFound, StateError) as exc:
            state = exc.state if isinstance(exc, StateError) else "created"
            raise ConflictError(f"container {container.name} is {state}") from None

    def remove(
        self,
        container: Container,
        force: bool = False,
        volumes: bool = False,
        release_network: bool = True,
        leftovers: list[Path] | None = None,
    ) -> None:
        """Remove the container; ``volumes`` (``rm -v``): its anonymous volumes too. The lock is
        held only to take the record away (a rename): stopping and cleaning up run outside it,
        so that removals run side by side. Without ``release_network`` its network records
        stay until the caller's ``networks.forget_removed()`` (or any later change of them).
        With ``leftovers``, the directory, renamed out of sight, is added there for the caller
        to delete (``delete_leftovers``) rather than deleted now: a stack's ``down`` answers
        first (deleting a container's files takes a millisecond on ext4, several under the
        load of a ``down``); if the caller dies first, the next listing deletes it."""
        try:
            current = self.runtime.state(container.id)
        except NotFound:
            current = None
        except rstate.Unreadable:
            if not force:
                raise ConflictError(
                    f"container {container.name}: its runtime state is unreadable: use -f"
                ) from None
            self.runtime.delete(container.id, force=True)  # kills what its cgroup holds
            current = None
        if current is not None:
            if current.status in ("running", "paused", "created") and not force:
                raise ConflictError(
                    f"container {container.name} is {current.status}: stop it first or use -f"
                )
            self.runtime.delete(container.id, force=True)
        pid = os.getpid()  # (whose removal: collected at once if we are killed)
        gone = self.directory / f".removed-{container.id}-{pid}-{rstate.process_start_time(pid)}"
        with self._lock():
            try:
                container.directory.rename(gone)
            except FileNotFoundError:
                return  # removed meanwhile by someone else
        if leftovers is None:
            shutil.rmtree(gone, ignore_errors=True)
        else:
            leftovers.append(gone)
        eventlog.note(self.root, "destroy", container)
        if container.broken:
            if (self.root / "networks").exists():
                self.networks.release(container.id)  # whatever it had
            return
        if release_network and self._networks_used(container.options):
            self.networks.release(container.id)
        if volumes:
            Volumes(self.root).remove_anonymous(container.id, container.record)


def delete_leftovers(leftovers: list[Path]) -> None:
    """Delete what ``Containers.remove`` left to its caller."""
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def image_ids_in_use(root: Path) -> set[str]:
    """Image ids (``sha256:...``) that some container was made from (``rmi`` refuses those)."""
    return {str(c.record.get("image_id")) for c in Containers(root).all()}


def _join_network(bundle: Path, path: str) -> None:
    """Point the bundle's network namespace at ``path`` (the running container it joins)."""
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    namespaces = config["linux"]["namespaces"]
    config["linux"]["namespaces"] = [n for n in namespaces if n.get("type") != "network"] + [
        {"type": "network", "path": path}
    ]
    config_path.write_text(json.dumps(config))


def _collect_removed(path: Path, after: float = 60.0) -> None:
    """Finish a removal that was cut short (the remover killed between taking the record away
    and deleting it): none takes a minute, so an older one is abandoned."""
    import time

    parts = path.name.removeprefix(".removed-").split("-")
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():  # <id>-<pid>-<start>
        if rstate.process_start_time(int(parts[1])) != int(parts[2]):
            shutil.rmtree(path, ignore_errors=True)
        return
    try:
        if time.time() - path.lstat().st_ctime > after:
            shutil.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        pass


def _young(directory: Path, seconds: float = 60.0) -> bool:
    import time

    try:
        return time.time() - directory.stat().st_mtime < seconds
    except OSError:
        return True


def _creator_gone(record: dict[str, Any]) -> bool:
    """Whether the process that was creating this record is gone (pid and start time)."""
    creator = record.get("creator")
    if not isinstance(creator, list) or len(creator) != 2:
        return True  # not being created by anyone we can name
    pid, start = creator
    return not isinstance(pid, int) or rstate.process_start_time(pid) != start


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


def effective_healthcheck(image: dict[str, Any] | None, flags: Any) -> dict[str, Any] | None:
    """Docker's rule: each ``--health-*`` flag replaces that field of the image's
    HEALTHCHECK; ``--no-healthcheck`` (Test NONE) removes it. None: no check."""
    merged = {**(image or {}), **dict(flags or {})}
    test = merged.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return merged


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
