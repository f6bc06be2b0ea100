"""The supervisor process: one per state root, holding ``supervisor.lock``.

At start it adopts what already runs: every container of a known project gets its watch back
(through its monitor, so nothing running is restarted), and the restart policy is applied to
those that ended while no supervisor was there (their monitors recorded the exits). Then it
serves the API. Reconciling a project (``up``) is level-triggered: load the stack, observe,
plan, execute; never two at once for one project.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from orchestrator.containers import Container, Containers, delete_leftovers
from orchestrator.description import NETWORK_LABEL, PROJECT_LABEL
from orchestrator.errors import UserError
from orchestrator.paths import images_dir, runtime_dir
from orchestrator.stack.graph import DependencyGraph
from orchestrator.stack.model import RestartPolicy, Stack
from orchestrator.stackvolumes import volume_names
from orchestrator.supervisor import DB_NAME, LOCK_NAME, SOCKET_NAME, health
from orchestrator.supervisor.execute import ExecutionError, Outcome, execute
from orchestrator.supervisor.faults import describe
from orchestrator.supervisor.observe import identity, observe, project_containers
from orchestrator.supervisor.plan import Operation, Plan, PlanOptions, make_plan
from orchestrator.supervisor.store import ProjectSpec, Store
from orchestrator.supervisor.watch import Watch
from runtime.client import ExitStatus, LocalRuntime
from runtime.errors import Error, NotFound
from runtime.trace import mark

# Restart a container that turns unhealthy (a service extension; Docker never does).
UNHEALTHY_RESTART_KEY = "x-restart-on-unhealthy"

T = TypeVar("T")


class _Unknown:
    """Not known yet (None is an answer: no healthcheck)."""


UNKNOWN = _Unknown()


class AlreadyRunning(UserError):
    pass


@dataclass
class Event:
    time: float
    project: str
    service: str
    container: str
    action: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "project": self.project,
            "service": self.service,
            "container": self.container,
            "action": self.action,
            "detail": self.detail,
        }


@dataclass
class EventLog:
    """The latest events, and live subscribers (``events``, ``up``'s progress)."""

    recent: list[Event] = field(default_factory=list)
    subscribers: list[trio.MemorySendChannel[Event]] = field(default_factory=list)

    def publish(self, event: Event) -> None:
        self.recent = [*self.recent[-999:], event]
        for channel in list(self.subscribers):
            try:
                channel.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.subscribers.remove(channel)  # a reader that cannot keep up is dropped

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[Event]]:
        send, receive = trio.open_memory_channel[Event](1000)
        self.subscribers.append(send)
        try:
            yield receive
        finally:
            if send in self.subscribers:
                self.subscribers.remove(send)
            await send.aclose()


@dataclass(frozen=True)
class UpOptions:
    services: tuple[str, ...] = ()
    no_deps: bool = False
    force_recreate: bool = False
    no_recreate: bool = False
    no_start: bool = False
    remove_orphans: bool = False
    wait: bool = False
    timeout: float = 120.0
    build: bool = False


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.containers = Containers(root)
        self.store = Store(root / DB_NAME)
        self.client = LocalRuntime(runtime_dir(root))
        self.watches: dict[str, Watch] = {}
        self.health: dict[str, str] = {}
        self.events = EventLog()
        self._project_locks: dict[str, trio.Lock] = {}
        self._changed = trio.Event()  # set at a change, then replaced (wait_changed)
        # Creations and starts run on threads a few at a time: on a few cores, fifty at once
        # only take turns at the GIL (and make fifty threads). Two a core measured best.
        self._creating = trio.CapacityLimiter(min(16, 2 * (os.cpu_count() or 1)))
        self._network_names: dict[str, dict[str, str]] = {}
        # each project's stack as its last ``up`` loaded it (what its containers were made from)
        self._stacks: dict[str, Stack] = {}
        self._start_locks: dict[str, trio.Lock] = {}
        self._nursery: trio.Nursery | None = None

    # -- the process ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from orchestrator.supervisor.api import serve

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.adopt()
            await nursery.start(serve, self, self.root / SOCKET_NAME)
            task_status.started()

    def stop_serving(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def adopt(self) -> None:
        """Take over what runs (and what ended meanwhile) for every known project."""
        boot = _boot_id()
        if await self.thread(self.store.get_meta, "boot_id") not in (None, boot):
            # After a reboot no process of ours lives: nothing is believed running (the
            # runtime checks pids by start time), and every restart history starts over.
            await self.thread(self.store.forget_containers)
        await self.thread(self.store.set_meta, "boot_id", boot)
        for line in await self.thread(self._unreadable):
            self._log(line)
        for spec in await self.thread(self.store.projects):
            try:
                stack = await self.load(spec)
            except Exception as exc:
                self._log(f"project {spec.name}: cannot load its stack: {exc}")
                continue
            for container in await self.thread(project_containers, self.containers, spec.name):
                ident = identity(container)
                service = stack.services.get(str(ident.get("service")))
                if service is None or ident.get("oneoff"):
                    continue  # an orphan, or a one-off (``run``): not kept by the supervisor
                status = await self.thread(self.containers.status, container)
                row = await self.thread(self.store.container, container.id)
                if status["state"] in ("running", "paused"):
                    await self.watch(stack, container)
                elif status["state"] == "exited" and not (row and row.manual_stop):
                    await self.record_exit(
                        container, ExitStatus.from_record(status) if status else None
                    )
                    if _restarts_after_exit(service.restart, status.get("exit_code")):
                        await self.start_container(stack, container)
                        await self.count_restart(container)

        await self._adopt_single_containers()
        await self.thread(self._remove_downed_networks)

    def _remove_downed_networks(self) -> None:
        """The networks of projects taken down whose removal a crash cut short (``down``
        answers before its bridges go): a stack's network no known project owns."""
        networks = self.containers.networks
        owners = {(n.get("labels") or {}).get(PROJECT_LABEL) for n in networks.all()}
        for owner in owners - {spec.name for spec in self.store.projects()} - {None}:
            try:
                # (one still in use, a one-off's say, stays: its project's next down removes it)
                networks.prune({PROJECT_LABEL: str(owner)})
            except Exception as exc:
                self._log(f"networks of project {owner}: {describe(exc)}")

    def _unreadable(self) -> list[str]:
        """(blocking) The containers whose files cannot be read, each with the file: they are
        not adopted (nothing says what they are, or whether they run)."""
        found = []
        for container in self.containers.all():
            error = self.containers.status(container).get("error")
            if error:
                path = runtime_dir(self.root) / container.id / "state.json"
                found.append(
                    f"{container.name}: cannot read {path} ({error}): its state is unknown"
                )
        for container in self.containers.broken:
            path = container.directory / "container.json"
            found.append(
                f"container {container.short_id} ({container.name}): cannot read {path}"
                f" ({container.broken}): not adopted; `down` of its project or"
                f" `rm -f {container.short_id}` removes it"
            )
        return found

    async def _adopt_single_containers(self) -> None:
        """Single containers with a restart policy (``run -d --restart``) or a healthcheck
        are kept as a stack's are (orchestrator.keep): watched when running; restarted by their
        policy when they ended while no supervisor ran, unless stopped by hand (``always`` even
        then, as Docker's daemon does when it starts)."""
        from orchestrator.keep import kept

        for container in await self.thread(self.containers.all):
            if identity(container).get("project") or not kept(container):
                continue
            policy = single_policy(container) or RestartPolicy()
            try:
                await self._adopt_single(container, policy)
            except Exception as exc:  # (one container must not keep the others from adoption)
                self._log(f"{container.name}: cannot adopt: {type(exc).__name__}: {exc}")

    async def _adopt_single(self, container: Container, policy: RestartPolicy) -> None:
        row = await self.thread(self.store.container, container.id)
        if row is None:
            return  # never started with its policy under a supervisor
        status = await self.thread(self.containers.status, container)
        if status["state"] in ("running", "paused"):
            await self.watch(None, container)
        elif status["state"] == "exited":
            await self.record_exit(container, ExitStatus.from_record(status))
            if (policy.name == "always" or not row.manual_stop) and _restarts_after_exit(
                policy, status.get("exit_code")
            ):
                await self.keep(container)
                await self.count_restart(container)

    async def keep(self, container: Container) -> None:
        """Keep a single container with a restart policy or a healthcheck: start it unless it
        runs, and watch it (``run -d --restart``, ``start``)."""
        await self.thread(self.store.ensure_container, container.id, "", "", 0)
        await self.thread(self.store.set_manual_stop, container.id, False)
        status = await self.thread(self.containers.status, container)
        if status["state"] not in ("running", "paused"):
            await self.thread(self.containers.start, container)
            await self.emit(container, "start")
        await self.watch(None, container)

    async def release(self, container_id: str) -> None:
        """No more restarts of a kept container until it is started again: the CLI is about to
        stop, kill or remove it (Docker's daemon cancels its restart manager the same way)."""
        await self.thread(self.store.set_manual_stop, container_id, True)
        watch = self.watches.get(container_id)
        if watch is not None:
            watch.loop.cancel()

    # -- helpers -------------------------------------------------------------------------------

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(lambda: fn(*args))

    def _log(self, text: str) -> None:
        try:
            print(f"supervisor: {text}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass  # the log's disk is full (or it is closed): the supervisor goes on all the same

    async def _note(self, container: Container, what: str, fn: Callable[[], None]) -> None:
        """Write a container's history (restarts, exits, health) to the database. History is
        not worth dying for: a failure (a full disk) is logged, and the supervisor goes on."""
        try:
            await self.thread(fn)
        except Exception as exc:
            self._log(f"{container.name}: cannot record its {what}: {describe(exc)}")

    async def emit(self, container: Container, action: str, detail: str = "") -> None:
        ident = identity(container)
        self.events.publish(
            Event(
                time.time(),
                str(ident.get("project") or ""),
                str(ident.get("service") or ""),
                container.name,
                action,
                detail,
            )
        )
        self._changed.set()
        self._changed = trio.Event()

    async def set_health(self, container: Container, status: str) -> None:
        self.health[container.id] = status
        await self._note(container, "health", lambda: self.store.set_health(container.id, status))
        await self.emit(container, f"health_status: {status}")

    async def count_restart(self, container: Container) -> None:
        def bump() -> None:
            row = self.store.container(container.id)
            if row is not None:
                row.restart_count += 1
                self.store.update_container(row)

        await self._note(container, "restart count", bump)
        await self.emit(container, "restart")

    async def record_exit(self, container: Container, status: ExitStatus | None) -> None:
        if status is None:
            return

        def record() -> None:
            row = self.store.container(container.id)
            if row is not None:
                row.last_exit = status.exit_code
                row.runs.append({"exit_code": status.exit_code, "finished": status.finished})
                self.store.update_container(row)

        await self._note(container, "exit", record)

    def project_lock(self, name: str) -> trio.Lock:
        return self._project_locks.setdefault(name, trio.Lock())

    async def load(self, spec: ProjectSpec) -> Stack:
        from orchestrator.stack import load_stack

        return await self.thread(
            lambda: load_stack(
                list(spec.files),
                project_name=spec.name,
                environ=spec.environ,
                profiles=list(spec.profiles) or None,
                cwd=spec.workdir,
            )
        )

    # -- containers ----------------------------------------------------------------------------

    async def watch(
        self,
        stack: Stack | None,
        container: Container,
        image_check: Mapping[str, Any] | _Unknown | None = UNKNOWN,
    ) -> None:
        """Give the running ``container`` its watch (once): a stack's (by its service), or a
        single container kept for its restart policy (``stack`` None). ``image_check``: its
        image's healthcheck, when the caller has read it already."""
        if container.id in self.watches and not self.watches[container.id].done.is_set():
            return
        if isinstance(image_check, _Unknown):
            image_check = await self.thread(self._image_healthcheck, container)
        if stack is None:
            policy = single_policy(container) or RestartPolicy()
            # the record's: the --health-* flags over the image's (orchestrator.containers)
            check = health.resolve(None, container.record.get("healthcheck", image_check))
            on_unhealthy = False
        else:
            service = stack.services[str(identity(container).get("service"))]
            policy = service.restart
            check = health.resolve(service.healthcheck, image_check)
            on_unhealthy = bool(service.extensions.get(UNHEALTHY_RESTART_KEY))
        watch = Watch(self, container, policy, check, on_unhealthy)
        self.watches[container.id] = watch
        if check is None:
            self.health.pop(container.id, None)
        assert self._nursery is not None
        await self._nursery.start(watch.run)

    def _image_healthcheck(self, container: Container) -> Mapping[str, Any] | None:
        from runtime.image.store import ImageStore

        try:
            image = ImageStore(images_dir(self.root)).resolve(str(container.record.get("image_id")))
        except Exception:
            return None
        return image.healthcheck

    async def start_container(self, stack: Stack, container: Container) -> None:
        def start() -> tuple[bool, Mapping[str, Any] | None]:
            # (one hop to a thread for all of it: an up of 50 services makes 50 of these)
            self.store.set_manual_stop(container.id, False)
            return self._start_if_stopped(container), self._image_healthcheck(container)

        async with self._start_locks.setdefault(container.id, trio.Lock()):
            started, image_check = await self.thread(start)
        if started:
            await self.emit(container, "start")
        await self.watch(stack, container, image_check)

    async def start_if_stopped(self, container: Container) -> bool:
        """Start the container unless it runs: whether it was started. A start by ``up`` and
        one by its watch's restart policy (both after a failed restart, say) take turns."""
        async with self._start_locks.setdefault(container.id, trio.Lock()):
            return await self.thread(self._start_if_stopped, container)  # (one hop)

    def _start_if_stopped(self, container: Container) -> bool:
        if self.containers.status(container)["state"] in ("running", "paused"):
            return False
        self.containers.start(container)
        return True

    async def stop_container(self, container: Container, timeout: float | None = None) -> None:
        """A stop by hand: the restart policy does not bring it back."""
        await self.thread(self.store.set_manual_stop, container.id, True)
        if timeout is None:
            timeout = container.options.stop_timeout
        watch = self.watches.get(container.id)
        if watch is not None and not watch.done.is_set():
            await watch.stop(timeout)
        else:
            await self.thread(self.containers.stop, container, timeout)
        await self.emit(container, "stop")

    async def remove_container(
        self,
        container: Container,
        timeout: float | None = None,
        release_network: bool = True,
        leftovers: list[Path] | None = None,
    ) -> None:
        """Stop and remove it. Without ``release_network``, the caller releases the network
        records of all it removes at once (``networks.forget_removed``); with ``leftovers``, it
        deletes the directory later (``Containers.remove``)."""
        try:
            await self.stop_container(container, timeout)
        except Exception as exc:  # (remove forcibly all the same: it is going)
            self._log(f"{container.name}: stopping before removal: {type(exc).__name__}: {exc}")
        await self.thread(
            self.containers.remove, container, True, False, release_network, leftovers
        )
        self.watches.pop(container.id, None)
        self.health.pop(container.id, None)
        self._start_locks.pop(container.id, None)
        await self.thread(self.store.forget_container, container.id)
        await self.emit(container, "destroy")

    async def prepare_project(self, stack: Stack) -> dict[str, str]:
        """The stack's networks and named volumes, made where missing: once per ``up``, before
        any container. Its network keys to the networks' names."""
        names = await self.thread(self.ensure_networks, stack)
        await self.thread(self.ensure_volumes, stack)
        self._network_names[stack.name] = names
        return names

    async def create_container(
        self, stack: Stack, service_name: str, replica: int, start: bool = False
    ) -> Container:
        """Create replica ``replica`` of the service; with ``start``, start it too (and give
        it its watch): a start that fails leaves the container created, and raises."""
        from orchestrator.description import from_service

        service = stack.services[service_name]
        name = service.container_name or f"{stack.name}-{service_name}-{replica}"
        image = await self.image_for(stack, service_name)
        networks = self._network_names.get(stack.name) or await self.prepare_project(stack)
        description = from_service(
            stack.name,
            service,
            replica,
            name,
            image,
            networks,
            volume_names(stack),
            {s: f"{stack.name}-{s}-1" for s in stack.services},
            (stack.secrets, stack.configs),
        )

        def create() -> tuple[Container, tuple[bool, Mapping[str, Any] | None] | Exception]:
            # (one hop to a thread for the creation, its row and the start)
            # (the peers' hosts files are rewritten once the whole up is done: see up)
            container = self.containers.create(description, refresh_peers=False)
            self.store.ensure_container(container.id, stack.name, service_name, replica)
            if not start:
                return container, (False, None)
            try:
                # (a new container: nobody else knows its id to start it meanwhile)
                self.containers.start(container)
                return container, (True, self._image_healthcheck(container))
            except Exception as exc:
                return container, exc

        container, started = await trio.to_thread.run_sync(create, limiter=self._creating)
        await self.emit(container, "create")
        if isinstance(started, Exception):
            raise started
        if start:
            await self.emit(container, "start")
            await self.watch(stack, container, started[1])
        return container

    async def image_for(self, stack: Stack, service_name: str, build: bool = False) -> str:
        """The image a service runs: its ``image``, built first when the service has a
        ``build`` section and the image is missing (or ``build``)."""
        service = stack.services[service_name]
        name = service.image or f"{stack.name}-{service_name}"
        if service.build is None:
            return name
        from runtime.image.store import ImageStore

        store = ImageStore(images_dir(self.root))
        if not build:
            try:
                await self.thread(store.resolve, name)
                return name
            except NotFound:
                pass
        await self.thread(self._build, stack, service_name, name)
        return name

    def _build(self, stack: Stack, service_name: str, tag: str) -> None:
        import io

        from orchestrator.imagebuild.builder import Builder, BuildOptions

        build = stack.services[service_name].build
        assert build is not None
        context = Path(build.context)
        dockerfile = Path(build.dockerfile) if build.dockerfile else None
        if dockerfile is not None and not dockerfile.is_absolute():
            dockerfile = context / dockerfile
        options = BuildOptions(
            context=context,
            dockerfile=dockerfile,
            tags=[tag],
            build_args={k: v for k, v in build.args.items() if v is not None},
            target=build.target,
        )
        Builder(self.root, out=io.StringIO()).build(options)

    def ensure_volumes(self, stack: Stack) -> None:
        """(blocking) The stack's named volumes, made where missing (an external one must
        exist): data kept across recreations and ``down`` (``down -v`` removes them)."""
        from orchestrator import stackvolumes

        stackvolumes.ensure(self.root, stack)

    def ensure_networks(self, stack: Stack) -> dict[str, str]:
        """(blocking) The stack's networks, made where missing (an external one must exist):
        its network keys to the networks' names. Compose's ``default`` network is made when a
        service uses it."""
        networks = self.containers.networks
        names = {key: net.name for key, net in stack.networks.items()}
        needed: set[str] = set()
        for service in stack.services.values():
            if service.network_mode is None:
                needed |= {n.name for n in service.networks} or {"default"}
        for key in sorted(needed):
            network = stack.networks.get(key)
            name = names.setdefault(key, f"{stack.name}_{key}")
            if network is not None and network.external:
                networks.get(name)  # NotFoundError names it
                continue
            ipam = network.ipam[0] if network is not None and network.ipam else None
            labels = dict(network.labels) if network is not None else {}
            labels.update({PROJECT_LABEL: stack.name, NETWORK_LABEL: key})
            networks.ensure(
                name,
                ipam.subnet if ipam else None,
                ipam.gateway if ipam else None,
                bool(network is not None and network.internal),
                labels,
            )
        return names

    def remove_networks(self, project: str) -> list[str]:
        """(blocking) The networks made for ``project`` that no container uses any more."""
        removed = []
        networks = self.containers.networks
        for network in networks.all():
            if (network.get("labels") or {}).get(PROJECT_LABEL) != project:
                continue
            try:
                networks.remove(network["name"])
                removed.append(str(network["name"]))
            except UserError as exc:
                self._log(f"network {network['name']}: {exc}")
        return removed

    def container(self, container_id: str) -> Container:
        return self.containers.get(container_id)

    # -- projects ------------------------------------------------------------------------------

    async def plan(self, stack: Stack, options: UpOptions, scale: Mapping[str, int]) -> Plan:
        observed = await self.thread(observe, self.containers, stack.name)
        image_ids = await self.thread(self._image_ids, stack)
        return make_plan(
            stack,
            observed,
            image_ids,
            PlanOptions(
                services=options.services,
                no_deps=options.no_deps,
                scale=scale,
                force_recreate=options.force_recreate,
                no_recreate=options.no_recreate,
                no_start=options.no_start,
                remove_orphans=options.remove_orphans,
            ),
        )

    def _image_ids(self, stack: Stack) -> dict[str, str]:
        from runtime.image.store import ImageStore

        store = ImageStore(images_dir(self.root))
        result = {}
        for name, service in stack.services.items():
            ref = service.image or f"{stack.name}-{name}"
            try:
                result[name] = store.resolve(ref).id
            except Exception:
                continue
        return result

    async def up(self, spec: ProjectSpec, options: UpOptions) -> tuple[Plan, Outcome]:
        async with self.project_lock(spec.name):
            mark("up-locked")
            stack = await self.load(spec)
            self._stacks[spec.name] = stack
            mark("up-loaded")
            # The scale is the request's (``--scale``, ``scale``), else the file's: an ``up``
            # without ``--scale`` brings services back to the file's replicas, as Compose does.
            await self.thread(self.store.put_project, spec)
            if options.build:
                for name, service in stack.services.items():
                    if service.build is not None:
                        await self.image_for(stack, name, build=True)
            plan = await self.plan(stack, options, spec.scale)
            mark("up-planned")
            if not plan.empty:
                await self.prepare_project(stack)
            mark("up-prepared")
            engine = _Engine(self, stack, options)
            try:
                outcome = await execute(
                    stack,
                    plan,
                    engine,
                    self._report(stack.name),
                    wait_timeout=options.timeout,
                    start=not options.no_start,
                )
            finally:
                # Each new container's hosts file named its peers made before it; now every
                # container of the stack's networks names them all (once, not once each).
                if not plan.empty:
                    names = self._network_names.get(stack.name, {})
                    await self.thread(self.containers.networks.refresh_hosts, names.values())
            mark("up-executed")
            if options.wait and outcome.ok and not options.no_start:
                for name in plan.services:
                    try:
                        await engine.wait_condition(
                            name, "service_healthy_or_running", options.timeout
                        )
                    except ExecutionError as exc:
                        outcome.failed[name] = str(exc)
            return plan, outcome

    def _report(self, project: str) -> Callable[[str, str, str], Any]:
        async def report(service: str, what: str, detail: str) -> None:
            self.events.publish(Event(time.time(), project, service, "", what, detail))

        return report

    async def down(self, name: str, timeout: float | None, volumes: bool = False) -> list[str]:
        """Stop and remove the project's containers in reverse dependency order, then its
        networks; with ``volumes``, its named volumes too."""
        async with self.project_lock(name):
            mark("down-locked")
            spec = await self.thread(self.store.project, name)
            stack: Stack | None = None
            if spec is not None:
                with contextlib.suppress(Exception):
                    stack = await self.load(spec)
            # (its one-off containers too: they hold its networks)
            containers = await self.thread(project_containers, self.containers, name, True)
            removed: list[str] = []
            leftovers: list[Path] = []  # (their directories, deleted after the answer)
            veths: list[str] = []  # (and their veths the kernel has not removed yet)
            done = False
            try:
                for layer in _stop_layers(stack, containers):
                    async with trio.open_nursery() as nursery:
                        for container in layer:
                            removed.append(container.name)
                            nursery.start_soon(
                                self.remove_container, container, timeout, False, leftovers
                            )
                done = True
            finally:
                # (all of them at once, whatever happened: the removed ones' leases, veths,
                # port rules, and their peers' hosts files)
                await self.thread(self.containers.networks.forget_removed, veths)
                if not done:  # (no answer to hurry: what the removed left goes at once)
                    with trio.CancelScope(shield=True):
                        await self._clean_up(None, leftovers, veths)
            mark("down-removed")
            removed += await self._remove_broken(name)
            if self._nursery is not None:
                # The bridges and the containers' files go right after the answer: the kernel
                # takes some 45 ms to unregister a bridge. Under the project's lock, so that its
                # next up waits for them; shielded, so that a shutdown waits too.
                self._nursery.start_soon(self._clean_up_later, name, leftovers, veths)
            else:
                await self._clean_up(name, leftovers, veths)
            if volumes and stack is not None:
                from orchestrator import stackvolumes

                removed += await self.thread(stackvolumes.remove, self.root, stack)
            await self.thread(self.store.drop_project, name)
            self._stacks.pop(name, None)
            mark("down-done")
            return removed

    async def _clean_up_later(self, project: str, leftovers: list[Path], veths: list[str]) -> None:
        with trio.CancelScope(shield=True):
            async with self.project_lock(project):
                await self._clean_up(project, leftovers, veths)
                mark("down-networks-removed")

    async def _clean_up(self, project: str | None, leftovers: list[Path], veths: list[str]) -> None:
        """What a ``down`` leaves to after its answer: the containers' files, the veths the
        kernel has not removed with their namespaces yet, the project's networks (None: a
        ``down`` that failed keeps them)."""
        await self.thread(delete_leftovers, leftovers)
        await self.thread(self.containers.networks.delete_veths, veths)
        if project is not None:
            await self.thread(self.remove_networks, project)

    async def _remove_broken(self, project: str) -> list[str]:
        """The project's containers whose record cannot be read (the database says whose they
        are): removed with all they own, as ``rm -f`` does."""

        def broken() -> list[Container]:
            ids = self.store.container_ids(project)
            self.containers.all()
            return [c for c in self.containers.broken if c.id in ids]

        removed = []
        for container in await self.thread(broken):
            watch = self.watches.pop(container.id, None)
            if watch is not None:
                watch.loop.cancel()  # (watched from before its record broke: no restart now)
            try:
                await self.thread(self.containers.remove, container, True)
            except Exception as exc:
                self._log(f"{container.name}: cannot remove it: {describe(exc)}")
                continue
            await self.thread(self.store.forget_container, container.id)
            removed.append(container.name)
        return removed

    async def restart_project(
        self, name: str, services: tuple[str, ...], timeout: float | None
    ) -> tuple[list[str], list[str]]:
        """``restart``: stop, then start the services' containers, and then restart the
        services that depend on them with ``restart: true``. (stopped, started) names."""
        stopped = await self.stop_project(name, services, timeout)
        started = await self.start_project(name, services)
        spec = await self.thread(self.store.project, name)
        if spec is not None and services:
            stack = await self.load(spec)
            started += await self.restart_dependents(stack, services)
        return stopped, started

    async def dependency_restarted(self, container: Container) -> None:
        """A container restarted by its policy: the services that depend on its service
        with ``restart: true`` are restarted too, once its condition holds again."""
        ident = identity(container)
        try:
            project = str(ident.get("project") or "")
            stack = self._stacks.get(project)
            if stack is None:  # (none since this supervisor started: the file's)
                spec = await self.thread(self.store.project, project)
                if spec is None:
                    return
                stack = self._stacks[project] = await self.load(spec)
            if not restarted_with(stack, (str(ident.get("service")),)):
                return
            async with self.project_lock(stack.name):
                await self.restart_dependents(stack, (str(ident.get("service")),))
        except Exception as exc:  # (logged: the dependency itself is back, whatever happens)
            self._log(f"{container.name}: restarting its dependents: {type(exc).__name__}: {exc}")

    async def restart_dependents(self, stack: Stack, services: tuple[str, ...]) -> list[str]:
        """Restart the running containers of the services that depend on ``services`` with
        ``restart: true`` (and theirs, in turn), in start order, each once the conditions on
        what was restarted before it hold. The names restarted."""
        engine = _Engine(self, stack, UpOptions())
        restarted = set(services)
        names = []
        for service in restarted_with(stack, services):
            for dep in stack.services[service].depends_on:
                if dep.service in restarted:
                    await engine.wait_condition(dep.service, dep.condition, 60.0)
            for container in await self.thread(project_containers, self.containers, stack.name):
                if identity(container).get("service") != service:
                    continue
                state = (await self.thread(self.containers.status, container))["state"]
                if state not in ("running", "paused"):
                    continue
                await self.emit(container, "restart", "a dependency restarted")
                await self.stop_container(container)
                await self.start_container(stack, container)
                names.append(container.name)
            restarted.add(service)
        return names

    async def stop_project(
        self, name: str, services: tuple[str, ...], timeout: float | None
    ) -> list[str]:
        spec = await self.thread(self.store.project, name)
        stack = await self.load(spec) if spec is not None else None
        containers = [
            c
            for c in await self.thread(project_containers, self.containers, name)
            if not services or identity(c).get("service") in services
        ]
        stopped = []
        for layer in _stop_layers(stack, containers):
            async with trio.open_nursery() as nursery:
                for container in layer:
                    stopped.append(container.name)
                    nursery.start_soon(self.stop_container, container, timeout)
        return stopped

    async def start_project(self, name: str, services: tuple[str, ...]) -> list[str]:
        spec = await self.thread(self.store.project, name)
        if spec is None:
            raise UserError(f"no project {name!r} is up")
        stack = await self.load(spec)
        containers = [
            c
            for c in await self.thread(project_containers, self.containers, name)
            if not services or identity(c).get("service") in services
        ]
        started = []
        graph = DependencyGraph.from_services(stack.services)
        for layer in graph.layers():
            async with trio.open_nursery() as nursery:
                for container in containers:
                    if identity(container).get("service") not in layer:
                        continue
                    status = await self.thread(self.containers.status, container)
                    if status["state"] in ("running", "paused"):
                        continue
                    started.append(container.name)
                    nursery.start_soon(self.start_container, stack, container)
        return started

    async def each_container(
        self, name: str, services: tuple[str, ...], verb: str, sig: int, stop_first: bool
    ) -> list[str]:
        """``kill``, ``pause``, ``unpause`` or ``rm`` the project's containers (of
        ``services``). A killed container's restart policy applies, as in Compose; ``rm``
        takes stopped containers only, unless ``stop_first``."""
        done = []
        for container in await self.thread(project_containers, self.containers, name):
            if services and identity(container).get("service") not in services:
                continue
            state = (await self.thread(self.containers.status, container))["state"]
            if verb == "kill" and state in ("running", "paused"):
                await self.thread(self.containers.kill, container, sig)
            elif verb == "pause" and state == "running":
                await self.thread(self.containers.pause, container)
            elif verb == "unpause" and state == "paused":
                await self.thread(self.containers.unpause, container)
            elif verb == "rm" and (state not in ("running", "paused") or stop_first):
                await self.remove_container(container)
            else:
                continue
            done.append(container.name)
            await self.emit(container, verb)
        return done

    async def rows(self, name: str) -> list[dict[str, Any]]:
        """``ps`` of a project: each container with its service, replica, state, health,
        restart count and last exit."""
        containers = await self.thread(project_containers, self.containers, name)
        result = []
        for container in containers:
            status = await self.thread(self.containers.status, container)
            watch = self.watches.get(container.id)
            if (
                status["state"] == "exited"
                and watch is not None
                and not watch.done.is_set()
                and not watch.loop.stopping
            ):
                # ended, and its restart policy is bringing it back: Compose's (and Docker's)
                # "restarting", listed by a plain ps as the running are
                status = {**status, "state": "restarting"}
            ident = identity(container)
            row = await self.thread(self.store.container, container.id)
            result.append(
                {
                    **status,
                    "project": name,
                    "service": ident.get("service"),
                    "replica": ident.get("replica"),
                    "health": self.health.get(container.id)
                    if status["state"] == "running"
                    else None,
                    "restart_count": row.restart_count if row else 0,
                    "last_exit": row.last_exit if row else None,
                    "last_error": await self._last_error(container.id, status),
                    "ports": await self.thread(self._ports, container.id),
                }
            )
        return sorted(result, key=lambda r: (str(r["service"]), int(r["replica"] or 0)))

    async def _last_error(self, container_id: str, status: Mapping[str, Any]) -> str | None:
        """Why it is not as it should be: its last restart failed, its state is unknown, or
        it runs without its monitor."""
        watch = self.watches.get(container_id)
        if watch is not None and not watch.done.is_set() and watch.last_error:
            return watch.last_error
        if status.get("error"):
            return str(status["error"])
        if status["state"] in ("running", "paused") and not await self.thread(
            self._monitor_alive, container_id
        ):
            return "its monitor died: it runs on, watched through its pid; its exit code is lost"
        return None

    def _monitor_alive(self, container_id: str) -> bool:
        """(blocking)"""
        try:
            return bool(self.containers.runtime.state(container_id).monitor_alive)
        except Error:
            return True  # (gone meanwhile, or unreadable: said otherwise)

    def _ports(self, container_id: str) -> list[str]:
        """(blocking) Its published ports, Docker's way: ``127.0.0.1:8080->80/tcp``; none for
        a container whose state cannot be read (``ps`` says it is unknown)."""
        try:
            bindings = self.containers.networks.bindings(container_id)
        except Error:
            return []
        return [f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.port}/{b.protocol}" for b in bindings]

    async def wait_changed(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            await self._changed.wait()


class _Engine:
    """Carries a plan's operations out on the supervisor (execute.Engine)."""

    def __init__(self, supervisor: Supervisor, stack: Stack, options: UpOptions) -> None:
        self.supervisor = supervisor
        self.stack = stack
        self.options = options

    async def apply(self, operation: Operation) -> None:
        sup = self.supervisor
        existing = sup.container(operation.container) if operation.container else None
        if operation.action in ("remove", "recreate") and existing is not None:
            await sup.remove_container(existing)
        if operation.action in ("create", "recreate"):
            await sup.create_container(
                self.stack, operation.service, operation.replica, start=not self.options.no_start
            )
        elif operation.action == "start" and existing is not None:
            await sup.start_container(self.stack, existing)
        elif operation.action == "restart" and existing is not None:
            await sup.stop_container(existing)
            await sup.start_container(self.stack, existing)

    async def wait_condition(self, service: str, condition: str, timeout: float) -> None:
        sup = self.supervisor
        deadline = trio.current_time() + timeout
        while True:
            containers = [
                c
                for c in await sup.thread(project_containers, sup.containers, self.stack.name)
                if identity(c).get("service") == service
            ]
            states = [await sup.thread(sup.containers.status, c) for c in containers]
            # exits no restart will follow: their watch has ended (or there is none)
            final = {
                c.id
                for c, st in zip(containers, states, strict=True)
                if st["state"] == "exited"
                and (c.id not in sup.watches or sup.watches[c.id].done.is_set())
            }
            verdict = _condition_met(condition, containers, states, sup.health, service, final)
            if verdict is True:
                return
            if isinstance(verdict, str):
                raise ExecutionError(verdict)
            if trio.current_time() > deadline:
                raise ExecutionError(f"{service}: not {condition} after {timeout:.0f} s")
            await sup.wait_changed(0.1)


def _condition_met(
    condition: str,
    containers: list[Container],
    states: list[dict[str, Any]],
    health_of: Mapping[str, str],
    service: str,
    final: set[str] | frozenset[str] = frozenset(),
) -> bool | str | None:
    """True when met, a reason when it never will be, None while it may still be. ``final``:
    the containers that exited with no restart to come."""
    if not containers:
        return None
    if condition == "service_completed_successfully":
        codes = [s.get("exit_code") for s in states if s["state"] == "exited"]
        if len(codes) < len(states):
            return None
        bad = [c for c in codes if c != 0]
        return True if not bad else f"{service} exited with code {bad[0]}"
    running = [s["state"] in ("running", "paused") for s in states]
    if condition == "service_started":
        for container, state in zip(containers, states, strict=True):
            if container.id in final:  # (Compose: "dependency failed to start")
                return f"{service} exited with code {state.get('exit_code')}"
        return True if all(running) else None
    # service_healthy (and, for --wait, healthy where there is a check, running otherwise)
    for container, state in zip(containers, states, strict=True):
        status = health_of.get(container.id)
        if state["state"] == "exited" and condition != "service_healthy_or_running":
            return f"{service} exited with code {state.get('exit_code')}"
        if status == health.UNHEALTHY:
            return f"{service} is unhealthy"
        if status is None:
            if condition == "service_healthy":
                return None if state["state"] != "running" else f"{service} has no healthcheck"
            if state["state"] != "running":
                return None
        elif status != health.HEALTHY:
            return None
    return True


def _stop_layers(stack: Stack | None, containers: list[Container]) -> list[list[Container]]:
    """The containers grouped for stopping: dependents before what they depend on."""
    if stack is None:
        return [containers]
    graph = DependencyGraph.from_services(stack.services)
    layers: list[list[Container]] = []
    placed: set[str] = set()
    for layer in graph.stop_layers():
        group = [c for c in containers if identity(c).get("service") in layer]
        placed.update(c.id for c in group)
        if group:
            layers.append(group)
    rest = [c for c in containers if c.id not in placed]  # orphans first of all
    return ([rest] if rest else []) + layers


def single_policy(container: Container) -> RestartPolicy | None:
    """A single container's restart policy (``run --restart``), None for ``no``."""
    from orchestrator.stack.units import UnitError, parse_restart

    text = container.record.get("options", {}).get("restart") or "no"
    try:
        policy = parse_restart(text)
    except UnitError:
        return None
    return None if policy.name == "no" else policy


def restarted_with(stack: Stack, services: tuple[str, ...]) -> list[str]:
    """The services restarted when ``services`` restart: those that depend on one of them
    with ``restart: true``, and on those in turn; in start order."""
    graph = DependencyGraph.from_services(stack.services)
    chosen = set(services)
    result = []
    for name in graph.start_order():
        if name in chosen:
            continue
        if any(d.restart and d.service in chosen for d in stack.services[name].depends_on):
            chosen.add(name)
            result.append(name)
    return result


def _restarts_after_exit(policy: RestartPolicy, exit_code: int | None) -> bool:
    if policy.name in ("always", "unless-stopped"):
        return True
    return policy.name == "on-failure" and exit_code != 0


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def acquire_lock(root: Path) -> int:
    """Hold ``supervisor.lock`` for this process's life; refuse naming the holder's pid."""
    from runtime.filelock import open_lock, try_lock

    root.mkdir(parents=True, exist_ok=True)
    fd = open_lock(root / LOCK_NAME)
    if not try_lock(fd):
        try:
            holder = os.pread(fd, 32, 0).decode().strip() or "?"
        finally:
            os.close(fd)
        raise AlreadyRunning(f"a supervisor already runs for {root} (pid {holder})")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def main(root: Path) -> int:
    """``orchestrator supervisor``: run in the foreground until SIGTERM or SIGINT."""
    import signal

    lock = acquire_lock(root)
    try:

        async def amain() -> None:
            supervisor = Supervisor(root)
            async with trio.open_nursery() as nursery:

                async def on_signals() -> None:
                    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        async for _ in signals:
                            supervisor._log("stopping (the containers go on)")
                            supervisor.stop_serving()
                            return

                nursery.start_soon(on_signals)
                await supervisor.run()  # until stop_serving (a signal, or /v1/shutdown)
                nursery.cancel_scope.cancel()

        trio.run(amain)
    finally:
        os.close(lock)
    return 0
