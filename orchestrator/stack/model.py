"""The typed, frozen model of a stack: what the rest of the orchestrator consumes.

Units, everywhere in this module:

- sizes are ``int`` bytes (``"512m"`` -> ``536870912``);
- durations are ``int`` nanoseconds, in fields whose names end in ``_ns`` (Docker's and Go's unit;
  divide by ``1e9`` for seconds);
- CPU amounts are ``float`` CPUs (``cpus: 1.5``);
- ``None`` means "not set": the runtime applies its default (listed in ``HEALTHCHECK_DEFAULTS``
  and friends).

Mappings are :class:`FrozenMap` (read-only, hashable, ordered as written); sequences are tuples.
Paths on the host (bind sources, build contexts, secret files) are absolute.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V], Generic[K, V]):
    """An immutable, hashable mapping that keeps insertion order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _empty() -> FrozenMap[Any, Any]:
    return FrozenMap()


NS = 1_000_000_000
HEALTHCHECK_DEFAULTS = {
    "interval_ns": 30 * NS,
    "timeout_ns": 30 * NS,
    "retries": 3,
    "start_period_ns": 0,
    "start_interval_ns": 5 * NS,
}
DEFAULT_STOP_GRACE_NS = 10 * NS
DEFAULT_STOP_SIGNAL = "SIGTERM"

Protocol = Literal["tcp", "udp", "sctp"]
RestartName = Literal["no", "always", "on-failure", "unless-stopped"]
Condition = Literal["service_started", "service_healthy", "service_completed_successfully"]


@dataclass(frozen=True, slots=True)
class Build:
    context: str
    dockerfile: str | None = None
    args: FrozenMap[str, str | None] = field(default_factory=_empty)
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Port:
    """One published (or only exposed-and-published) container port.

    ``published_start``..``published_end`` is the host port range (equal for one port, ``None`` to
    let the host pick)."""

    target: int
    published_start: int | None = None
    published_end: int | None = None
    host_ip: str | None = None
    protocol: Protocol = "tcp"
    mode: Literal["ingress", "host"] = "ingress"
    name: str | None = None
    app_protocol: str | None = None

    @property
    def published(self) -> str | None:
        if self.published_start is None:
            return None
        if self.published_end is None or self.published_end == self.published_start:
            return str(self.published_start)
        return f"{self.published_start}-{self.published_end}"


@dataclass(frozen=True, slots=True)
class Mount:
    """A ``volumes:`` or ``tmpfs:`` entry.

    ``source`` is a volume key (type volume; ``None`` for an anonymous volume) or an absolute host
    path (type bind); ``None`` for tmpfs."""

    type: Literal["volume", "bind", "tmpfs"]
    target: str
    source: str | None = None
    read_only: bool = False
    # bind
    create_host_path: bool = True
    propagation: str | None = None
    selinux: str | None = None
    # volume
    nocopy: bool = False
    subpath: str | None = None
    # tmpfs
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None


@dataclass(frozen=True, slots=True)
class VolumesFrom:
    """``volumes_from``: another service's (or, with ``container``, a container's) mounts."""

    source: str
    kind: Literal["service", "container"] = "service"
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ServiceNetwork:
    name: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None


@dataclass(frozen=True, slots=True)
class Healthcheck:
    """``test`` is normalised: ``("CMD", arg...)``, ``("CMD-SHELL", line)`` or ``("NONE",)``.
    ``disable`` (or ``test: ["NONE"]``) turns the image's healthcheck off."""

    test: tuple[str, ...] = ()
    interval_ns: int | None = None
    timeout_ns: int | None = None
    retries: int | None = None
    start_period_ns: int | None = None
    start_interval_ns: int | None = None
    disable: bool = False


@dataclass(frozen=True, slots=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class Resources:
    """Limits from both ``deploy.resources`` and the service-level keys (they must agree).

    ``memswap_limit`` is memory plus swap in bytes, ``-1`` for unlimited swap; ``pids_limit``
    ``-1`` means unlimited."""

    memory_limit: int | None = None
    memory_reservation: int | None = None
    memswap_limit: int | None = None
    cpus: float | None = None
    cpu_reservation: float | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset: str | None = None
    pids_limit: int | None = None
    shm_size: int | None = None


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """``max_attempts`` only for on-failure; ``delay_ns``/``window_ns`` from ``deploy.restart_policy``."""

    name: RestartName = "no"
    max_attempts: int | None = None
    delay_ns: int | None = None
    window_ns: int | None = None
    # The backoff between quick restarts (orchestrator.backoff.Backoff), from the service's
    # ``x-restart-backoff: {delay, max_delay, reset_after}``; None: the default
    backoff_delay_ns: int | None = None
    backoff_max_ns: int | None = None
    backoff_reset_ns: int | None = None


@dataclass(frozen=True, slots=True)
class DependsOn:
    service: str
    condition: Condition = "service_started"
    restart: bool = False
    required: bool = True


@dataclass(frozen=True, slots=True)
class Link:
    service: str
    alias: str


@dataclass(frozen=True, slots=True)
class FileRef:
    """A service's use of a secret or a config: mounted read-only at ``target`` (absolute)."""

    source: str
    target: str
    uid: str | None = None
    gid: str | None = None
    mode: int = 0o444


@dataclass(frozen=True, slots=True)
class ExtraHost:
    hostname: str
    address: str


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    image: str | None = None
    build: Build | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: FrozenMap[str, str | None] = field(default_factory=_empty)
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    container_name: str | None = None
    labels: FrozenMap[str, str] = field(default_factory=_empty)
    depends_on: tuple[DependsOn, ...] = ()
    links: tuple[Link, ...] = ()
    volumes: tuple[Mount, ...] = ()
    volumes_from: tuple[VolumesFrom, ...] = ()
    tmpfs: tuple[Mount, ...] = ()
    ports: tuple[Port, ...] = ()
    expose: tuple[str, ...] = ()
    networks: tuple[ServiceNetwork, ...] = ()
    network_mode: str | None = None
    extra_hosts: tuple[ExtraHost, ...] = ()
    restart: RestartPolicy = RestartPolicy()
    replicas: int = 1
    resources: Resources = Resources()
    ulimits: tuple[Ulimit, ...] = ()
    healthcheck: Healthcheck | None = None
    stop_signal: str | None = None
    stop_grace_period_ns: int | None = None
    init: bool | None = None
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    seccomp: str | None = None  # "unconfined", a profile file, or None: Docker's default
    sysctls: FrozenMap[str, str] = field(default_factory=_empty)
    tty: bool = False
    stdin_open: bool = False
    profiles: tuple[str, ...] = ()
    platform: str | None = None
    secrets: tuple[FileRef, ...] = ()
    configs: tuple[FileRef, ...] = ()
    extensions: FrozenMap[str, Any] = field(default_factory=_empty)
    config_hash: str = ""

    def dependencies(self) -> tuple[str, ...]:
        """Services this one needs started first: depends_on, links, volumes_from and
        ``network_mode: service:X``, without repeats, in that order."""
        names: list[str] = [d.service for d in self.depends_on]
        names += [link.service for link in self.links]
        names += [v.source for v in self.volumes_from if v.kind == "service"]
        if self.network_mode and self.network_mode.startswith("service:"):
            names.append(self.network_mode.removeprefix("service:"))
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class IpamConfig:
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None


@dataclass(frozen=True, slots=True)
class Network:
    key: str
    name: str
    driver: str | None = None
    driver_opts: FrozenMap[str, str] = field(default_factory=_empty)
    ipam: tuple[IpamConfig, ...] = ()
    internal: bool = False
    enable_ipv6: bool = False
    attachable: bool = False
    labels: FrozenMap[str, str] = field(default_factory=_empty)
    external: bool = False


@dataclass(frozen=True, slots=True)
class Volume:
    key: str
    name: str
    driver: str | None = None
    driver_opts: FrozenMap[str, str] = field(default_factory=_empty)
    labels: FrozenMap[str, str] = field(default_factory=_empty)
    external: bool = False


@dataclass(frozen=True, slots=True)
class FileObject:
    """A top-level secret or config: content from a host ``file`` (absolute), an
    ``environment`` variable (resolved into ``content``), or inline ``content`` (configs)."""

    key: str
    name: str
    file: str | None = None
    environment: str | None = None
    content: str | None = None
    external: bool = False


@dataclass(frozen=True, slots=True)
class Stack:
    name: str
    project_dir: str
    files: tuple[str, ...]
    services: FrozenMap[str, Service]
    networks: FrozenMap[str, Network] = field(default_factory=_empty)
    volumes: FrozenMap[str, Volume] = field(default_factory=_empty)
    secrets: FrozenMap[str, FileObject] = field(default_factory=_empty)
    configs: FrozenMap[str, FileObject] = field(default_factory=_empty)
    extensions: FrozenMap[str, Any] = field(default_factory=_empty)
    disabled_services: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
