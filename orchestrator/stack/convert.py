"""Turning a validated stack tree into the frozen model (:mod:`orchestrator.stack.model`).

The schema has already checked structure and types; here every value is parsed strictly
(:mod:`orchestrator.stack.units`) and the rules that span keys are checked, as Compose checks them:
``scale`` against ``deploy.replicas``, ``container_name`` with several replicas, ``mem_limit``
against ``deploy.resources.limits.memory``, undefined networks, volumes, secrets and configs,
``networks`` with ``network_mode``, and the platform against this machine.
"""

from __future__ import annotations

import ipaddress
import os
import platform as host_platform
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from orchestrator.errors import StackError
from orchestrator.stack.interpolate import DotenvError, Lookup, read_dotenv
from orchestrator.stack.model import (
    Build,
    Condition,
    DependsOn,
    ExtraHost,
    FileObject,
    FileRef,
    FrozenMap,
    Healthcheck,
    IpamConfig,
    Link,
    Mount,
    Network,
    Port,
    Resources,
    RestartPolicy,
    Service,
    ServiceNetwork,
    Ulimit,
    Volume,
    VolumesFrom,
)
from orchestrator.stack.units import (
    ULIMITS,
    UnitError,
    check_container_name,
    check_hostname,
    make_extra_host,
    parse_capability,
    parse_cpus,
    parse_duration,
    parse_expose,
    parse_extra_host,
    parse_int,
    parse_ip,
    parse_mode,
    parse_port_range,
    parse_ports,
    parse_protocol,
    parse_restart,
    parse_signal,
    parse_size,
)
from orchestrator.stack.yamlsafe import Locator, PathKey

T = TypeVar("T")

_OCI_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_oci_platform() -> str:
    machine = host_platform.machine().lower()
    return f"linux/{_OCI_ARCH.get(machine, machine)}"


@dataclass
class Context:
    locator: Locator
    project: str
    project_dir: Path
    lookup: Lookup
    warnings: list[str] = field(default_factory=list)
    declared_networks: set[str] = field(default_factory=set)
    declared_volumes: set[str] = field(default_factory=set)
    declared_secrets: set[str] = field(default_factory=set)
    declared_configs: set[str] = field(default_factory=set)

    def error(self, path: PathKey, message: str) -> StackError:
        return self.locator.error(path, message)

    def parse(self, path: PathKey, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except UnitError as exc:
            raise self.error(path, exc.message) from None

    def host_path(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            # HOME from the stack's environment when it has one, as Compose expands it.
            home = self.lookup("HOME") or os.path.expanduser("~")
            path = home + path[1:]
        return os.path.normpath(os.path.join(self.project_dir, path))


# -- helpers -------------------------------------------------------------------------------------


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def _map(ctx: Context, path: PathKey, value: Any, *, keep_none: bool) -> dict[str, str | None]:
    """A ``list_or_dict`` as a dict; ``KEY`` alone in a list (or ``KEY:`` empty) gives ``None``."""
    out: dict[str, str | None] = {}
    if value is None:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            out[k] = None if v is None and keep_none else _scalar_text(v)
        return out
    for i, item in enumerate(value):
        key, sep, val = item.partition("=")
        if not key:
            raise ctx.error((*path, i), f"{item!r} has no name before '='")
        out[key] = val if sep else (None if keep_none else "")
    return out


def _command(ctx: Context, path: PathKey, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(value)
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise ctx.error(path, f"cannot split into words: {exc}") from None


def _absolute(ctx: Context, path: PathKey, value: str, what: str) -> str:
    if not value.startswith("/"):
        raise ctx.error(path, f"{what} {value!r} must be an absolute path")
    if "\n" in value or "\0" in value:
        raise ctx.error(path, f"{what} contains a newline")
    return os.path.normpath(value)


# -- top level -----------------------------------------------------------------------------------


def convert_networks(ctx: Context, raw: dict[str, Any]) -> dict[str, Network]:
    out: dict[str, Network] = {}
    for key, spec in raw.items():
        path: PathKey = ("networks", key)
        spec = spec or {}
        external = bool(spec.get("external", False))
        name = spec.get("name") or (key if external else f"{ctx.project}_{key}")
        if external:
            extra = [k for k in spec if k not in ("external", "name") and not k.startswith("x-")]
            if extra:
                raise ctx.error(
                    (*path, extra[0]),
                    "conflicts with 'external': an external network is not configured here",
                )
        ipam = []
        for i, cfg in enumerate((spec.get("ipam") or {}).get("config") or []):
            cpath = (*path, "ipam", "config", i)
            subnet = ip_range = gateway = None
            if "subnet" in cfg:
                subnet = ctx.parse((*cpath, "subnet"), _network, cfg["subnet"], "subnet")
            if "ip_range" in cfg:
                ip_range = ctx.parse((*cpath, "ip_range"), _network, cfg["ip_range"], "ip_range")
            if "gateway" in cfg:
                gateway = ctx.parse((*cpath, "gateway"), parse_ip, cfg["gateway"], "gateway")
                if subnet and ipaddress.ip_address(gateway) not in ipaddress.ip_network(subnet):
                    raise ctx.error(
                        (*cpath, "gateway"), f"gateway {gateway} is not in subnet {subnet}"
                    )
            ipam.append(IpamConfig(subnet, gateway, ip_range))
        out[key] = Network(
            key=key,
            name=name,
            driver=spec.get("driver"),
            driver_opts=FrozenMap(
                {k: _scalar_text(v) for k, v in (spec.get("driver_opts") or {}).items()}
            ),
            ipam=tuple(ipam),
            internal=bool(spec.get("internal", False)),
            enable_ipv6=bool(spec.get("enable_ipv6", False)),
            attachable=bool(spec.get("attachable", False)),
            labels=FrozenMap(
                {
                    k: v or ""
                    for k, v in _map(
                        ctx, (*path, "labels"), spec.get("labels"), keep_none=False
                    ).items()
                }
            ),
            external=external,
        )
    return out


def _network(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise UnitError(
            f"{what} {text!r} is not a network in CIDR form (such as 172.20.0.0/24)"
        ) from None


def convert_volumes(ctx: Context, raw: dict[str, Any]) -> dict[str, Volume]:
    out: dict[str, Volume] = {}
    for key, spec in raw.items():
        path: PathKey = ("volumes", key)
        spec = spec or {}
        external = bool(spec.get("external", False))
        if external:
            extra = [k for k in spec if k not in ("external", "name") and not k.startswith("x-")]
            if extra:
                raise ctx.error(
                    (*path, extra[0]),
                    "conflicts with 'external': an external volume is not configured here",
                )
        out[key] = Volume(
            key=key,
            name=spec.get("name") or (key if external else f"{ctx.project}_{key}"),
            driver=spec.get("driver"),
            driver_opts=FrozenMap(
                {k: _scalar_text(v) for k, v in (spec.get("driver_opts") or {}).items()}
            ),
            labels=FrozenMap(
                {
                    k: v or ""
                    for k, v in _map(
                        ctx, (*path, "labels"), spec.get("labels"), keep_none=False
                    ).items()
                }
            ),
            external=external,
        )
    return out


def convert_file_objects(ctx: Context, section: str, raw: dict[str, Any]) -> dict[str, FileObject]:
    out: dict[str, FileObject] = {}
    for key, spec in raw.items():
        path: PathKey = (section, key)
        sources = [
            k
            for k in ("file", "environment", "content", "external")
            if spec.get(k) not in (None, False)
        ]
        if len(sources) != 1:
            allowed = "file, environment or external" + (
                " or content" if section == "configs" else ""
            )
            if not sources:
                raise ctx.error(path, f"needs one of {allowed}")
            raise ctx.error((*path, sources[1]), f"set only one of {allowed}")
        content = spec.get("content")
        env = spec.get("environment")
        if env is not None:
            content = ctx.lookup(env)
            if content is None:
                raise ctx.error((*path, "environment"), f"environment variable {env} is not set")
        file = spec.get("file")
        external = bool(spec.get("external", False))
        out[key] = FileObject(
            key=key,
            name=spec.get("name") or (key if external else f"{ctx.project}_{key}"),
            file=ctx.host_path(file) if file else None,
            environment=env,
            content=content,
            external=external,
        )
    return out


# -- services ------------------------------------------------------------------------------------


def convert_service(ctx: Context, name: str, raw: dict[str, Any]) -> Service:
    p: PathKey = ("services", name)

    def at(*sub: str | int) -> PathKey:
        return (*p, *sub)

    image = raw.get("image")
    build = _build(ctx, at("build"), raw["build"]) if raw.get("build") is not None else None
    if image is None and build is None:
        raise ctx.error(p, "needs an 'image' or a 'build'")

    environment = _environment(ctx, p, raw)
    labels = {
        k: v or "" for k, v in _map(ctx, at("labels"), raw.get("labels"), keep_none=False).items()
    }

    hostname = raw.get("hostname")
    if hostname is not None:
        ctx.parse(at("hostname"), check_hostname, hostname, "hostname", 63)
    domainname = raw.get("domainname")
    if domainname is not None:
        ctx.parse(at("domainname"), check_hostname, domainname, "domainname")
    container_name = raw.get("container_name")
    if container_name is not None:
        ctx.parse(at("container_name"), check_container_name, container_name)

    replicas = _replicas(ctx, p, raw)
    if container_name is not None and replicas > 1:
        raise ctx.error(
            at("container_name"),
            f"cannot set container_name when the service has {replicas} replicas: a container name must be unique",
        )

    network_mode = raw.get("network_mode")
    if network_mode is not None and raw.get("networks") is not None:
        raise ctx.error(at("networks"), "cannot be combined with network_mode")
    networks = _networks(ctx, at("networks"), raw.get("networks"))
    if network_mode is None and not networks:
        networks = (ServiceNetwork("default"),)

    user = raw.get("user")
    platform_value = raw.get("platform")
    if platform_value is not None:
        _check_platform(ctx, at("platform"), platform_value)

    return Service(
        name=name,
        image=image,
        build=build,
        command=_command(ctx, at("command"), raw.get("command")),
        entrypoint=_command(ctx, at("entrypoint"), raw.get("entrypoint")),
        environment=FrozenMap(environment),
        working_dir=raw.get("working_dir"),
        user=str(user) if user is not None else None,
        hostname=hostname,
        domainname=domainname,
        container_name=container_name,
        labels=FrozenMap(labels),
        depends_on=_depends_on(ctx, at("depends_on"), raw.get("depends_on")),
        links=_links(ctx, at("links"), raw.get("links") or []),
        volumes=tuple(
            _volume(ctx, at("volumes", i), v) for i, v in enumerate(raw.get("volumes") or [])
        ),
        volumes_from=tuple(
            _volumes_from(ctx, at("volumes_from", i), v)
            for i, v in enumerate(raw.get("volumes_from") or [])
        ),
        tmpfs=_tmpfs(ctx, at("tmpfs"), raw.get("tmpfs")),
        ports=_ports(ctx, at("ports"), raw.get("ports") or []),
        expose=tuple(
            ctx.parse(at("expose", i), parse_expose, e)
            for i, e in enumerate(raw.get("expose") or [])
        ),
        networks=networks,
        network_mode=network_mode,
        extra_hosts=_extra_hosts(ctx, at("extra_hosts"), raw.get("extra_hosts")),
        restart=_restart(ctx, p, raw),
        replicas=replicas,
        resources=_resources(ctx, p, raw),
        ulimits=_ulimits(ctx, at("ulimits"), raw.get("ulimits") or {}),
        healthcheck=_healthcheck(ctx, at("healthcheck"), raw.get("healthcheck")),
        stop_signal=ctx.parse(at("stop_signal"), parse_signal, raw["stop_signal"])
        if "stop_signal" in raw
        else None,
        stop_grace_period_ns=ctx.parse(
            at("stop_grace_period"), parse_duration, raw["stop_grace_period"], "stop_grace_period"
        )
        if "stop_grace_period" in raw
        else None,
        init=raw.get("init"),
        read_only=bool(raw.get("read_only", False)),
        cap_add=tuple(
            ctx.parse(at("cap_add", i), parse_capability, c)
            for i, c in enumerate(raw.get("cap_add") or [])
        ),
        cap_drop=tuple(
            ctx.parse(at("cap_drop", i), parse_capability, c)
            for i, c in enumerate(raw.get("cap_drop") or [])
        ),
        no_new_privileges=_security_opt(ctx, at("security_opt"), raw.get("security_opt") or []),
        sysctls=FrozenMap(_sysctls(ctx, at("sysctls"), raw.get("sysctls"))),
        tty=bool(raw.get("tty", False)),
        stdin_open=bool(raw.get("stdin_open", False)),
        profiles=tuple(raw.get("profiles") or ()),
        platform=platform_value,
        secrets=_file_refs(ctx, at("secrets"), raw.get("secrets") or [], "secrets"),
        configs=_file_refs(ctx, at("configs"), raw.get("configs") or [], "configs"),
        extensions=FrozenMap({k: v for k, v in raw.items() if k.startswith("x-")}),
    )


def _build(ctx: Context, path: PathKey, value: Any) -> Build:
    spec = {"context": value} if isinstance(value, str) else value
    context = spec.get("context", ".")
    if "://" not in context and not context.startswith("git@"):
        context = ctx.host_path(context)
    args = _map(ctx, (*path, "args"), spec.get("args"), keep_none=True)
    return Build(
        context=context,
        dockerfile=spec.get("dockerfile"),
        args=FrozenMap(args),
        target=spec.get("target"),
    )


def _environment(ctx: Context, p: PathKey, raw: dict[str, Any]) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    env_files = raw.get("env_file")
    if env_files is not None:
        entries = [env_files] if isinstance(env_files, str) else env_files
        for i, entry in enumerate(entries):
            path_text, required = (
                (entry, True)
                if isinstance(entry, str)
                else (entry["path"], entry.get("required", True))
            )
            where = (*p, "env_file") if isinstance(env_files, str) else (*p, "env_file", i)
            file = Path(ctx.host_path(path_text))
            try:
                env.update(read_dotenv(file, ctx.lookup))
            except FileNotFoundError:
                if required:
                    raise ctx.error(where, f"env file {file} not found") from None
            except IsADirectoryError:
                raise ctx.error(where, f"env file {file} is a directory") from None
            except DotenvError as exc:
                raise StackError(exc.message, file=str(file), line=exc.line) from None
    declared = _map(ctx, (*p, "environment"), raw.get("environment"), keep_none=True)
    for key, value in declared.items():
        if value is None:
            # "- KEY" with no value: taken from the environment, as Compose does; unset stays unset.
            value = ctx.lookup(key)
        env[key] = value
    return env


def _replicas(ctx: Context, p: PathKey, raw: dict[str, Any]) -> int:
    scale = raw.get("scale")
    deploy = raw.get("deploy") or {}
    replicas = deploy.get("replicas")
    if scale is not None and replicas is not None and scale != replicas:
        raise ctx.error((*p, "scale"), f"scale ({scale}) and deploy.replicas ({replicas}) differ")
    value = scale if scale is not None else replicas
    return 1 if value is None else int(value)


def _depends_on(ctx: Context, path: PathKey, value: Any) -> tuple[DependsOn, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(DependsOn(name) for name in sorted(value))
    return tuple(
        DependsOn(
            name,
            condition=cast(Condition, spec["condition"]),
            restart=bool(spec.get("restart", False)),
            required=bool(spec.get("required", True)),
        )
        for name, spec in sorted(value.items())
    )


def _links(ctx: Context, path: PathKey, value: list[str]) -> tuple[Link, ...]:
    out = []
    for i, item in enumerate(value):
        service, _, alias = item.partition(":")
        alias = alias or service
        ctx.parse((*path, i), check_hostname, alias, "link alias")
        out.append(Link(service, alias))
    return tuple(out)


_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


def _volume(ctx: Context, path: PathKey, value: Any) -> Mount:
    if isinstance(value, str):
        return _short_volume(ctx, path, value)
    kind = value["type"]
    target = _absolute(ctx, (*path, "target"), value["target"], "target")
    source = value.get("source")
    read_only = bool(value.get("read_only", False))
    if kind == "bind":
        if not source:
            raise ctx.error(path, "a bind mount needs a 'source'")
        opts = value.get("bind") or {}
        return Mount(
            "bind",
            target,
            ctx.host_path(source),
            read_only,
            create_host_path=bool(opts.get("create_host_path", True)),
            propagation=opts.get("propagation"),
            selinux=opts.get("selinux"),
        )
    if kind == "volume":
        if source:
            _check_volume(ctx, (*path, "source"), source)
        opts = value.get("volume") or {}
        return Mount(
            "volume",
            target,
            source or None,
            read_only,
            nocopy=bool(opts.get("nocopy", False)),
            subpath=opts.get("subpath"),
        )
    if source:
        raise ctx.error((*path, "source"), "a tmpfs mount has no source")
    opts = value.get("tmpfs") or {}
    size = (
        ctx.parse((*path, "tmpfs", "size"), parse_size, opts["size"], "tmpfs size")
        if "size" in opts
        else None
    )
    mode = (
        ctx.parse((*path, "tmpfs", "mode"), parse_mode, opts["mode"], "tmpfs mode")
        if "mode" in opts
        else None
    )
    return Mount("tmpfs", target, None, read_only, tmpfs_size=size, tmpfs_mode=mode)


def _short_volume(ctx: Context, path: PathKey, text: str) -> Mount:
    parts = text.split(":")
    if len(parts) > 3:
        raise ctx.error(path, f"volume {text!r} must be [SOURCE:]TARGET[:MODE]")
    if len(parts) == 1:
        return Mount("volume", _absolute(ctx, path, parts[0], "volume target"))
    source, target = parts[0], parts[1]
    target = _absolute(ctx, path, target, "volume target")
    read_only = False
    propagation = selinux = None
    nocopy = False
    if len(parts) == 3:
        for opt in parts[2].split(","):
            if opt in ("ro", "rw"):
                read_only = opt == "ro"
            elif opt in ("z", "Z"):
                selinux = opt
            elif opt in _PROPAGATION:
                propagation = opt
            elif opt == "nocopy":
                nocopy = True
            else:
                raise ctx.error(
                    path,
                    f"unknown volume option {opt!r} (ro, rw, z, Z, nocopy or a propagation mode)",
                )
    if not source:
        raise ctx.error(path, f"volume {text!r} has an empty source (is a variable unset?)")
    if source.startswith(("/", ".", "~")):
        return Mount(
            "bind",
            target,
            ctx.host_path(source),
            read_only,
            propagation=propagation,
            selinux=selinux,
        )
    _check_volume(ctx, path, source)
    return Mount("volume", target, source, read_only, nocopy=nocopy)


def _check_volume(ctx: Context, path: PathKey, name: str) -> None:
    if name not in ctx.declared_volumes:
        raise ctx.error(
            path, f"refers to undefined volume '{name}' (declare it under the top-level 'volumes')"
        )


def _volumes_from(ctx: Context, path: PathKey, text: str) -> VolumesFrom:
    kind: Literal["service", "container"] = "service"
    if text.startswith("container:"):
        kind = "container"
        text = text.removeprefix("container:")
    source, _, mode = text.partition(":")
    if mode not in ("", "ro", "rw") or not source:
        raise ctx.error(
            path, f"volumes_from {text!r} must be SERVICE[:ro|rw] or container:NAME[:ro|rw]"
        )
    return VolumesFrom(source, kind, mode == "ro")


_TMPFS_FLAGS = {"rw", "ro", "noexec", "exec", "nosuid", "suid", "nodev", "dev"}


def _tmpfs(ctx: Context, path: PathKey, value: Any) -> tuple[Mount, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    out = []
    for i, item in enumerate(items):
        where = path if isinstance(value, str) else (*path, i)
        target, _, opts = item.partition(":")
        target = _absolute(ctx, where, target, "tmpfs target")
        size = mode = None
        read_only = False
        for opt in filter(None, opts.split(",")):
            key, _, val = opt.partition("=")
            if key == "size":
                size = ctx.parse(where, parse_size, val, "tmpfs size")
            elif key == "mode":
                mode = ctx.parse(where, parse_mode, val, "tmpfs mode")
            elif key in _TMPFS_FLAGS and not val:
                read_only = read_only or key == "ro"
            else:
                raise ctx.error(where, f"unknown tmpfs option {opt!r}")
        out.append(Mount("tmpfs", target, None, read_only, tmpfs_size=size, tmpfs_mode=mode))
    return tuple(out)


def _ports(ctx: Context, path: PathKey, value: list[Any]) -> tuple[Port, ...]:
    out: list[Port] = []
    for i, item in enumerate(value):
        where = (*path, i)
        if not isinstance(item, dict):
            out += ctx.parse(where, parse_ports, item)
            continue
        target = ctx.parse((*where, "target"), parse_int, item["target"], "target port", 1, 65535)
        published = item.get("published")
        start = end = None
        if published is not None and published != "":
            start, end = ctx.parse(
                (*where, "published"), parse_port_range, str(published), "published port"
            )
        host_ip = item.get("host_ip")
        if host_ip is not None:
            host_ip = ctx.parse((*where, "host_ip"), parse_ip, host_ip, "host_ip")
        out.append(
            Port(
                target=target,
                published_start=start,
                published_end=end,
                host_ip=host_ip,
                protocol=ctx.parse(
                    (*where, "protocol"), parse_protocol, item.get("protocol", "tcp")
                ),
                mode=item.get("mode", "ingress"),
                name=item.get("name"),
                app_protocol=item.get("app_protocol"),
            )
        )
    return tuple(out)


def _networks(ctx: Context, path: PathKey, value: Any) -> tuple[ServiceNetwork, ...]:
    if value is None:
        return ()
    items: dict[str, Any] = {n: None for n in value} if isinstance(value, list) else value
    out = []
    for i, (name, spec) in enumerate(items.items()):
        where = (*path, i) if isinstance(value, list) else (*path, name)
        if name not in ctx.declared_networks and name != "default":
            raise ctx.error(
                where,
                f"refers to undefined network '{name}' (declare it under the top-level 'networks')",
            )
        spec = spec or {}
        aliases = tuple(spec.get("aliases") or ())
        for j, alias in enumerate(aliases):
            ctx.parse((*where, "aliases", j), check_hostname, alias, "network alias")
        v4 = spec.get("ipv4_address")
        if v4 is not None:
            v4 = ctx.parse((*where, "ipv4_address"), _ip_version, v4, 4)
        v6 = spec.get("ipv6_address")
        if v6 is not None:
            v6 = ctx.parse((*where, "ipv6_address"), _ip_version, v6, 6)
        out.append(ServiceNetwork(name, aliases, v4, v6))
    # Compose orders a service's networks by name (after priority, which is not supported): the
    # first one gives the first interface.
    return tuple(sorted(out, key=lambda n: n.name))


def _ip_version(text: str, version: int) -> str:
    address = parse_ip(text, f"ipv{version}_address")
    if ipaddress.ip_address(address).version != version:
        raise UnitError(f"{text!r} is not an IPv{version} address")
    return address


def _extra_hosts(ctx: Context, path: PathKey, value: Any) -> tuple[ExtraHost, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(
            ctx.parse((*path, host), make_extra_host, host, _scalar_text(addr))
            for host, addr in value.items()
        )
    return tuple(ctx.parse((*path, i), parse_extra_host, item) for i, item in enumerate(value))


_DEPLOY_CONDITION: dict[str, Literal["no", "on-failure", "always"]] = {
    "none": "no",
    "on-failure": "on-failure",
    "any": "always",
}


def _restart(ctx: Context, p: PathKey, raw: dict[str, Any]) -> RestartPolicy:
    policy = raw.get("restart")
    deploy_policy = (raw.get("deploy") or {}).get("restart_policy")
    result = (
        ctx.parse((*p, "restart"), parse_restart, policy) if policy is not None else RestartPolicy()
    )
    if deploy_policy is None:
        return result
    where = (*p, "deploy", "restart_policy")
    name = _DEPLOY_CONDITION[deploy_policy.get("condition", "any")]
    attempts = deploy_policy.get("max_attempts")
    delay = (
        ctx.parse((*where, "delay"), parse_duration, deploy_policy["delay"], "delay")
        if "delay" in deploy_policy
        else None
    )
    window = (
        ctx.parse((*where, "window"), parse_duration, deploy_policy["window"], "window")
        if "window" in deploy_policy
        else None
    )
    if policy is not None and result.name != name:
        raise ctx.error(
            (*p, "restart"), f"restart ({result.name}) and deploy.restart_policy ({name}) disagree"
        )
    if attempts is not None and name != "on-failure":
        raise ctx.error((*where, "max_attempts"), "only applies to condition on-failure")
    return RestartPolicy(
        name, attempts if attempts is not None else result.max_attempts, delay, window
    )


def _agree(
    ctx: Context, path: PathKey, what: str, a: T | None, b: T | None, other: str
) -> T | None:
    if a is not None and b is not None and a != b:
        raise ctx.error(path, f"{what} and {other} must be the same when both are set")
    return a if a is not None else b


def _resources(ctx: Context, p: PathKey, raw: dict[str, Any]) -> Resources:
    res = (raw.get("deploy") or {}).get("resources") or {}
    limits = res.get("limits") or {}
    reserve = res.get("reservations") or {}
    dr = (*p, "deploy", "resources")

    def size(path: PathKey, value: Any, what: str) -> int | None:
        return None if value is None else ctx.parse(path, parse_size, value, what)

    def cpus(path: PathKey, value: Any, what: str) -> float | None:
        return None if value is None else ctx.parse(path, parse_cpus, value, what)

    memory = _agree(
        ctx,
        (*p, "mem_limit"),
        "mem_limit",
        size((*p, "mem_limit"), raw.get("mem_limit"), "mem_limit"),
        size((*dr, "limits", "memory"), limits.get("memory"), "memory"),
        "deploy.resources.limits.memory",
    )
    reservation = _agree(
        ctx,
        (*p, "mem_reservation"),
        "mem_reservation",
        size((*p, "mem_reservation"), raw.get("mem_reservation"), "mem_reservation"),
        size((*dr, "reservations", "memory"), reserve.get("memory"), "memory"),
        "deploy.resources.reservations.memory",
    )
    cpu_limit = _agree(
        ctx,
        (*p, "cpus"),
        "cpus",
        cpus((*p, "cpus"), raw.get("cpus"), "cpus"),
        cpus((*dr, "limits", "cpus"), limits.get("cpus"), "cpus"),
        "deploy.resources.limits.cpus",
    )
    pids_value = raw.get("pids_limit")
    pids = (
        None
        if pids_value is None
        else ctx.parse((*p, "pids_limit"), parse_int, pids_value, "pids_limit", -1)
    )
    pids = _agree(
        ctx,
        (*p, "pids_limit"),
        "pids_limit",
        pids,
        None
        if limits.get("pids") is None
        else ctx.parse((*dr, "limits", "pids"), parse_int, limits["pids"], "pids", -1),
        "deploy.resources.limits.pids",
    )
    swap_value = raw.get("memswap_limit")
    swap: int | None = None
    if swap_value in (-1, "-1"):
        swap = -1
    elif swap_value is not None:
        swap = ctx.parse((*p, "memswap_limit"), parse_size, swap_value, "memswap_limit")
        if memory is None:
            raise ctx.error((*p, "memswap_limit"), "needs a memory limit (mem_limit) too")
        if swap < memory:
            raise ctx.error(
                (*p, "memswap_limit"),
                "must be at least the memory limit (it counts memory plus swap)",
            )
    if memory is not None and reservation is not None and reservation > memory:
        raise ctx.error((*p, "mem_reservation"), "must not be more than the memory limit")

    def integer(key: str, lo: int, hi: int) -> int | None:
        value = raw.get(key)
        return None if value is None else ctx.parse((*p, key), parse_int, value, key, lo, hi)

    shares = integer("cpu_shares", 0, 262144)
    if shares == 1:
        raise ctx.error((*p, "cpu_shares"), "must be 0 (the default) or at least 2")
    quota = integer("cpu_quota", -1, 2**62)
    if quota is not None and 0 <= quota < 1000:
        raise ctx.error(
            (*p, "cpu_quota"), "must be at least 1000 (microseconds), or -1 for no limit"
        )
    shm = raw.get("shm_size")
    return Resources(
        memory_limit=memory,
        memory_reservation=reservation,
        memswap_limit=swap,
        cpus=cpu_limit,
        cpu_reservation=cpus((*dr, "reservations", "cpus"), reserve.get("cpus"), "cpus"),
        cpu_shares=shares,
        cpu_quota=quota,
        cpu_period=integer("cpu_period", 1000, 1_000_000),
        cpuset=raw.get("cpuset"),
        pids_limit=pids,
        shm_size=None if shm is None else ctx.parse((*p, "shm_size"), parse_size, shm, "shm_size"),
    )


def _ulimits(ctx: Context, path: PathKey, value: dict[str, Any]) -> tuple[Ulimit, ...]:
    out = []
    for name, spec in value.items():
        where = (*path, name)
        if name not in ULIMITS:
            raise ctx.error(where, f"unknown ulimit '{name}' (one of {', '.join(sorted(ULIMITS))})")
        soft, hard = (spec, spec) if isinstance(spec, int) else (spec["soft"], spec["hard"])
        for v in (soft, hard):
            if v < -1:
                raise ctx.error(where, "a ulimit must be -1 (unlimited) or more")
        if hard != -1 and (soft == -1 or soft > hard):
            raise ctx.error(where, f"soft limit {soft} is above the hard limit {hard}")
        out.append(Ulimit(name, soft, hard))
    return tuple(out)


def _healthcheck(ctx: Context, path: PathKey, value: Any) -> Healthcheck | None:
    if value is None:
        return None
    test = value.get("test")
    disable = bool(value.get("disable", False))
    if disable:
        if test is not None and test != ["NONE"]:
            raise ctx.error((*path, "test"), "cannot be set together with disable: true")
        return Healthcheck(test=("NONE",), disable=True)
    words: tuple[str, ...] = ()
    if isinstance(test, str):
        words = ("CMD-SHELL", test)
    elif isinstance(test, list):
        if not test:
            raise ctx.error((*path, "test"), "is empty")
        if test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ctx.error(
                (*path, "test"), f"must start with CMD, CMD-SHELL or NONE, not {test[0]!r}"
            )
        if test[0] == "CMD-SHELL" and len(test) != 2:
            raise ctx.error((*path, "test"), "CMD-SHELL takes exactly one command line")
        if test[0] == "CMD" and len(test) < 2:
            raise ctx.error((*path, "test"), "CMD needs a command")
        words = tuple(test)
    if words[:1] == ("NONE",):
        return Healthcheck(test=("NONE",), disable=True)

    def duration(key: str) -> int | None:
        if key not in value:
            return None
        return ctx.parse((*path, key), parse_duration, value[key], key)

    return Healthcheck(
        test=words,
        interval_ns=duration("interval"),
        timeout_ns=duration("timeout"),
        retries=value.get("retries"),
        start_period_ns=duration("start_period"),
        start_interval_ns=duration("start_interval"),
    )


def _security_opt(ctx: Context, path: PathKey, value: list[str]) -> bool:
    nnp = False
    for i, opt in enumerate(value):
        key, _, val = opt.replace("=", ":", 1).partition(":")
        if key != "no-new-privileges":
            raise ctx.error(
                (*path, i), f"security_opt {opt!r} is not supported yet (only no-new-privileges)"
            )
        if val not in ("", "true", "false"):
            raise ctx.error((*path, i), "no-new-privileges takes true or false")
        nnp = val != "false"
    return nnp


def _sysctls(ctx: Context, path: PathKey, value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in _map(ctx, path, value, keep_none=False).items():
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", key):
            raise ctx.error((*path, key), f"sysctl name {key!r} is not valid")
        out[key] = val or ""
    return out


def _file_refs(ctx: Context, path: PathKey, value: list[Any], section: str) -> tuple[FileRef, ...]:
    declared = ctx.declared_secrets if section == "secrets" else ctx.declared_configs
    out = []
    for i, item in enumerate(value):
        where = (*path, i)
        spec = {"source": item} if isinstance(item, str) else item
        source = spec["source"]
        if source not in declared:
            kind = section[:-1]
            raise ctx.error(
                where,
                f"refers to undefined {kind} '{source}' (declare it under the top-level '{section}')",
            )
        target = spec.get("target") or source
        if not target.startswith("/"):
            target = f"/run/secrets/{target}" if section == "secrets" else f"/{target}"
        target = _absolute(ctx, (*where, "target"), target, "target")
        uid = spec.get("uid")
        gid = spec.get("gid")
        for key, v in (("uid", uid), ("gid", gid)):
            if v is not None and not re.fullmatch(r"[0-9]{1,10}", str(v)):
                raise ctx.error((*where, key), f"{key} must be a number, not {v!r}")
        mode = (
            ctx.parse((*where, "mode"), parse_mode, spec["mode"], "mode")
            if "mode" in spec
            else 0o444
        )
        out.append(
            FileRef(
                source,
                target,
                None if uid is None else str(uid),
                None if gid is None else str(gid),
                mode,
            )
        )
    return tuple(out)


def _check_platform(ctx: Context, path: PathKey, value: str) -> None:
    here = host_oci_platform()
    parts = value.lower().split("/")
    wanted = "/".join(parts[:2])
    if len(parts) < 2 or wanted != here:
        raise ctx.error(path, f"platform {value!r} does not match this machine ({here})")
