"""What a container should be: one typed description that both ``orchestrator run`` (from its
flags) and a stack service (``from_service``) turn into, and that ``orchestrator.bundle`` turns
into an OCI bundle. The image's config fills in what the description leaves out.

Identity travels with it: the project, service, replica number and config hash of a stack's
container, and the user's labels, end up in the runtime's annotations, so that the runtime's
``list`` alone can tell which container is which after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator import netconfig
from orchestrator.mountspec import Mount, VolumesFrom
from orchestrator.netconfig import Endpoint, Link, Publish

if TYPE_CHECKING:
    from orchestrator.stack.model import FileObject, Service

# The container record's format (container.json); bumped when its meaning changes.
RECORD_VERSION = 2

# Annotations the runtime keeps for us (OCI annotations: strings only).
ANNOTATION_NAME = "org.orchestrator.container.name"
ANNOTATION_IMAGE = "org.orchestrator.container.image"
ANNOTATION_PROJECT = "org.orchestrator.project"
ANNOTATION_SERVICE = "org.orchestrator.service"
ANNOTATION_REPLICA = "org.orchestrator.replica"
ANNOTATION_CONFIG_HASH = "org.orchestrator.config-hash"
ANNOTATION_ONEOFF = "org.orchestrator.oneoff"  # "true" on a stack's one-off container
ANNOTATION_LABEL_PREFIX = "org.orchestrator.label."
ANNOTATION_RECORD_VERSION = "org.orchestrator.record-version"
# Labels of the networks and volumes made for a stack: whose they are, and which of its keys.
PROJECT_LABEL = ANNOTATION_PROJECT
NETWORK_LABEL = "org.orchestrator.network"
STOP_SIGNAL_ANNOTATION = "org.opencontainers.image.stopSignal"

DEFAULT_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Identity:
    """Which stack container this is (all empty for a single container)."""

    project: str = ""
    service: str = ""
    replica: int = 0
    config_hash: str = ""
    # a one-off container of the service (``orchestrator -f FILE run SERVICE``): not one of its
    # replicas, never recreated or counted by the supervisor, removed by ``down``
    oneoff: bool = False


@dataclass(frozen=True)
class FileCopy:
    """A file the container reads at ``target`` (read-only): a stack's secret or config, its
    content taken when the container is made."""

    target: str
    content: str
    mode: int = 0o444
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class ContainerDescription:
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
    # Networking (orchestrator.netconfig, orchestrator.networks): ``network`` is none, host,
    # container:NAME, service:NAME, or the first of ``networks`` (eth0, eth1... in order).
    networks: tuple[Endpoint, ...] = ()
    publish: tuple[Publish, ...] = ()
    publish_all: bool = False  # -P: every exposed port on a free host port
    expose: tuple[str, ...] = ()  # "80/tcp", besides the image's
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (name, address or "host-gateway")
    links: tuple[Link, ...] = ()
    domainname: str | None = None
    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    auto_remove: bool = False
    read_only: bool = False
    # Volumes, bind mounts and tmpfs (orchestrator.mountspec); volumes_from takes another
    # container's volumes and binds. Resolved when the container is made (orchestrator.mountplan).
    mounts: tuple[Mount, ...] = ()
    volumes_from: tuple[VolumesFrom, ...] = ()
    # Kernel settings and finer limits (a stack's ulimits, sysctls, shm_size, cpuset, cpu_quota
    # and cpu_period), and files copied in when the container is made (its secrets, configs).
    ulimits: tuple[tuple[str, int, int], ...] = ()  # (name, soft, hard): ("nofile", 1024, 4096)
    sysctls: Mapping[str, str] = field(default_factory=dict)
    shm_size: int | None = None
    cpuset: str | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    files: tuple[FileCopy, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    # None: Docker's default seccomp profile; "unconfined"; or a profile's JSON text
    # (orchestrator.seccompprofile)
    seccomp: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    tty: bool = False
    interactive: bool = False
    # a small init as the container's first process (``--init``, a service's ``init: true``):
    # it reaps zombies and passes signals on to the command
    init: bool = False
    # a single container's restart policy (``run --restart``: no, always, on-failure[:N],
    # unless-stopped); the supervisor keeps it when it is not "no" (orchestrator.keep)
    restart: str = "no"
    # ``--health-*`` flags over the image's HEALTHCHECK, in the image config's form ({"Test":
    # ["CMD-SHELL", "..."], "Interval": ns, ...}); {"Test": ["NONE"]}: ``--no-healthcheck``
    healthcheck: Mapping[str, Any] | None = None
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
    identity: Identity = Identity()

    def annotations(self) -> dict[str, str]:
        """What the runtime's record carries of us (see the module's docstring)."""
        result = {ANNOTATION_RECORD_VERSION: str(RECORD_VERSION)}
        if self.identity.project:
            result[ANNOTATION_PROJECT] = self.identity.project
            result[ANNOTATION_SERVICE] = self.identity.service
            result[ANNOTATION_REPLICA] = str(self.identity.replica)
            result[ANNOTATION_CONFIG_HASH] = self.identity.config_hash
            if self.identity.oneoff:
                result[ANNOTATION_ONEOFF] = "true"
        for key, value in self.labels.items():
            result[ANNOTATION_LABEL_PREFIX + key] = value
        return result

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready form (container.json's ``options``)."""
        from dataclasses import asdict

        record = asdict(self)
        record["labels"] = dict(self.labels)
        return record

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> ContainerDescription:
        values = dict(raw)
        for key in ("command", "entrypoint"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        for key in ("env", "cap_add", "cap_drop"):
            values[key] = tuple(values.get(key) or ())
        identity = values.get("identity")
        values["identity"] = Identity(**identity) if isinstance(identity, dict) else Identity()
        values["labels"] = dict(values.get("labels") or {})
        netconfig.restore(values)
        values["mounts"] = tuple(Mount.from_record(m) for m in values.get("mounts") or ())
        values["volumes_from"] = tuple(VolumesFrom(**v) for v in values.get("volumes_from") or ())
        values["ulimits"] = tuple(tuple(u) for u in values.get("ulimits") or ())
        values["sysctls"] = dict(values.get("sysctls") or {})
        values["files"] = tuple(FileCopy(**f) for f in values.get("files") or ())
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


def labels_of(annotations: Mapping[str, str]) -> dict[str, str]:
    """The user's labels back from a runtime record's annotations."""
    return {
        key.removeprefix(ANNOTATION_LABEL_PREFIX): value
        for key, value in annotations.items()
        if key.startswith(ANNOTATION_LABEL_PREFIX)
    }


def from_service(
    project: str,
    service: Service,
    replica: int,
    name: str,
    image: str | None = None,
    network_names: Mapping[str, str] | None = None,
    volume_names: Mapping[str, str] | None = None,
    service_containers: Mapping[str, str] | None = None,
    file_objects: tuple[Mapping[str, FileObject], Mapping[str, FileObject]] | None = None,
) -> ContainerDescription:
    """The description of replica ``replica`` of a stack's ``service``, named ``name``.
    ``image``: the image to run when the service is built (its own ``image`` otherwise).
    ``network_names``: the stack's network keys to the real networks' names (default
    ``<project>_<key>``); the supervisor makes those networks (orchestrator.networks.ensure).
    ``volume_names``: the stack's volume keys to the volumes' names (default ``<project>_<key>``;
    orchestrator.stackvolumes.ensure makes them); ``service_containers``: the container whose
    volumes ``volumes_from: [service]`` takes (default ``<project>-<service>-1``).

    Service keys that no part of a container can honour yet (healthchecks,
    ulimits...) are the supervisor's and its helpers' to apply; they are not dropped here by
    accident, they are simply not a container's description."""
    from orchestrator.netflags import service_fields
    from orchestrator.servicemounts import service_mounts

    environment = tuple(
        f"{key}={value}" if value is not None else key for key, value in service.environment.items()
    )
    resources = service.resources
    memory_swap = resources.memswap_limit
    stop_timeout = (
        service.stop_grace_period_ns / 1e9
        if service.stop_grace_period_ns is not None
        else DEFAULT_STOP_TIMEOUT
    )
    return ContainerDescription(
        image=image or service.image or "",
        command=service.command,
        entrypoint=service.entrypoint,
        name=name,
        env=environment,
        user=service.user,
        workdir=service.working_dir,
        hostname=service.hostname,
        **service_fields(project, service, network_names),
        memory=resources.memory_limit,
        memory_swap=memory_swap,
        memory_reservation=resources.memory_reservation,
        cpus=resources.cpus,
        cpu_shares=resources.cpu_shares,
        pids_limit=resources.pids_limit,
        read_only=service.read_only,
        **service_mounts(project, service, volume_names, service_containers),
        ulimits=tuple((u.name, u.soft, u.hard) for u in service.ulimits),
        sysctls=dict(service.sysctls),
        shm_size=resources.shm_size,
        cpuset=resources.cpuset,
        cpu_quota=resources.cpu_quota,
        cpu_period=resources.cpu_period,
        files=_files(service, file_objects or ({}, {})),
        cap_add=service.cap_add,
        cap_drop=service.cap_drop,
        no_new_privileges=service.no_new_privileges,
        seccomp=_seccomp_choice(service.seccomp),
        labels=dict(service.labels),
        stop_signal=service.stop_signal,
        stop_timeout=stop_timeout,
        tty=service.tty,
        interactive=service.stdin_open,
        init=bool(service.init),
        identity=Identity(project, service.name, replica, service.config_hash),
    )


def _seccomp_choice(option: str | None) -> str | None:
    """A service's ``security_opt: [seccomp:...]``: its profile file is read now, as Docker
    reads it when it makes the container."""
    if option is None:
        return None
    from orchestrator.seccompprofile import read_choice

    return read_choice(option, "security_opt")


def _files(
    service: Service, objects: tuple[Mapping[str, FileObject], Mapping[str, FileObject]]
) -> tuple[FileCopy, ...]:
    """The service's secrets (at /run/secrets/NAME unless given a target) and configs (at
    /NAME), their content read now (a host file, an environment variable, inline text)."""
    from orchestrator.errors import UserError

    secrets, configs = objects
    result = []
    for refs, known, default_dir in (
        (service.secrets, secrets, "/run/secrets"),
        (service.configs, configs, ""),
    ):
        for ref in refs:
            obj = known.get(ref.source)
            if obj is None:
                raise UserError(f"service {service.name}: no secret or config {ref.source!r}")
            if obj.content is not None:
                content = obj.content
            elif obj.file is not None:
                try:
                    with open(obj.file, encoding="utf-8") as f:
                        content = f.read()
                except (OSError, UnicodeDecodeError) as exc:
                    raise UserError(
                        f"service {service.name}: {ref.source}: {obj.file}: {exc}"
                    ) from None
            else:
                raise UserError(f"service {service.name}: {ref.source}: no content to give")
            target = ref.target if ref.target.startswith("/") else f"{default_dir}/{ref.target}"
            result.append(
                FileCopy(
                    target,
                    content,
                    ref.mode,
                    int(ref.uid) if ref.uid and ref.uid.isdigit() else 0,
                    int(ref.gid) if ref.gid and ref.gid.isdigit() else 0,
                )
            )
    return tuple(result)
