"""Turning a validated stack tree into the frozen model (:mod:`orchestrator.stack.model`).

The schema has already checked structure and types; here every value is parsed strictly
(:mod:`orchestrator.stack.units`) and the rules that span keys are checked, as Compose checks them:
``scale`` against ``deploy.replicas``, ``container_name`` with several replicas, ``mem_limit``
against ``deploy.resources.limits.memory``, undefined networks, volumes, secrets and configs,
``networks`` with ``network_mode``, and the platform against this machine.

This module holds the service entry point (:func:`convert_service`) and the keys of no larger
group; the groups have their own modules, each for the top-level section and the service keys of
one subject:

- ``context``       the :class:`Context` and the helpers every converter shares
- ``networking``    top-level ``networks``; ``networks``, ``ports``, ``extra_hosts``
- ``mounts``        top-level ``volumes``; ``volumes``, ``tmpfs``, ``volumes_from``
- ``fileobjects``   top-level ``secrets`` and ``configs``; a service's ``secrets``, ``configs``
- ``deploy``        replicas, restart policy, resources, ``ulimits``
- ``healthcheck``   ``healthcheck``
"""

from __future__ import annotations

import platform as host_platform
import re
import shlex
from pathlib import Path
from typing import Any, cast

from orchestrator.errors import StackError
from orchestrator.stack.context import Context, list_or_dict
from orchestrator.stack.deploy import (
    convert_replicas,
    convert_resources,
    convert_restart,
    convert_ulimits,
)
from orchestrator.stack.fileobjects import convert_file_objects, convert_file_refs
from orchestrator.stack.healthcheck import convert_healthcheck
from orchestrator.stack.interpolate import DotenvError, read_dotenv
from orchestrator.stack.model import (
    Build,
    Condition,
    DependsOn,
    FrozenMap,
    Link,
    Service,
    ServiceNetwork,
)
from orchestrator.stack.mounts import (
    convert_mount,
    convert_tmpfs,
    convert_volumes,
    convert_volumes_from,
)
from orchestrator.stack.networking import (
    convert_extra_hosts,
    convert_networks,
    convert_ports,
    convert_service_networks,
)
from orchestrator.stack.units import (
    check_container_name,
    check_hostname,
    parse_capability,
    parse_duration,
    parse_expose,
    parse_signal,
)
from orchestrator.stack.yamlsafe import PathKey

# Imported from here by the loader.
__all__ = [
    "Context",
    "convert_file_objects",
    "convert_networks",
    "convert_service",
    "convert_volumes",
    "host_oci_platform",
]

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
        k: v or ""
        for k, v in list_or_dict(ctx, at("labels"), raw.get("labels"), keep_none=False).items()
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

    replicas = convert_replicas(ctx, p, raw)
    if container_name is not None and replicas > 1:
        raise ctx.error(
            at("container_name"),
            f"cannot set container_name when the service has {replicas} replicas: a container name must be unique",
        )

    network_mode = raw.get("network_mode")
    if network_mode is not None and raw.get("networks") is not None:
        raise ctx.error(at("networks"), "cannot be combined with network_mode")
    networks = convert_service_networks(ctx, at("networks"), raw.get("networks"))
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
            convert_mount(ctx, at("volumes", i), v) for i, v in enumerate(raw.get("volumes") or [])
        ),
        volumes_from=tuple(
            convert_volumes_from(ctx, at("volumes_from", i), v)
            for i, v in enumerate(raw.get("volumes_from") or [])
        ),
        tmpfs=convert_tmpfs(ctx, at("tmpfs"), raw.get("tmpfs")),
        ports=convert_ports(ctx, at("ports"), raw.get("ports") or []),
        expose=tuple(
            ctx.parse(at("expose", i), parse_expose, e)
            for i, e in enumerate(raw.get("expose") or [])
        ),
        networks=networks,
        network_mode=network_mode,
        extra_hosts=convert_extra_hosts(ctx, at("extra_hosts"), raw.get("extra_hosts")),
        restart=convert_restart(ctx, p, raw),
        replicas=replicas,
        resources=convert_resources(ctx, p, raw),
        ulimits=convert_ulimits(ctx, at("ulimits"), raw.get("ulimits") or {}),
        healthcheck=convert_healthcheck(ctx, at("healthcheck"), raw.get("healthcheck")),
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
        **_security_opt(ctx, at("security_opt"), raw.get("security_opt") or []),
        sysctls=FrozenMap(_sysctls(ctx, at("sysctls"), raw.get("sysctls"))),
        tty=bool(raw.get("tty", False)),
        stdin_open=bool(raw.get("stdin_open", False)),
        profiles=tuple(raw.get("profiles") or ()),
        platform=platform_value,
        secrets=convert_file_refs(ctx, at("secrets"), raw.get("secrets") or [], "secrets"),
        configs=convert_file_refs(ctx, at("configs"), raw.get("configs") or [], "configs"),
        extensions=FrozenMap({k: v for k, v in raw.items() if k.startswith("x-")}),
    )


def _build(ctx: Context, path: PathKey, value: Any) -> Build:
    spec = {"context": value} if isinstance(value, str) else value
    context = spec.get("context", ".")
    if "://" not in context and not context.startswith("git@"):
        context = ctx.host_path(context)
    args = list_or_dict(ctx, (*path, "args"), spec.get("args"), keep_none=True)
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
    declared = list_or_dict(ctx, (*p, "environment"), raw.get("environment"), keep_none=True)
    for key, value in declared.items():
        if value is None:
            # "- KEY" with no value: taken from the environment, as Compose does; unset stays unset.
            value = ctx.lookup(key)
        env[key] = value
    return env


def _command(ctx: Context, path: PathKey, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(value)
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise ctx.error(path, f"cannot split into words: {exc}") from None


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


def _security_opt(ctx: Context, path: PathKey, value: list[str]) -> dict[str, Any]:
    """no-new-privileges[:true|false]; seccomp:unconfined or seccomp:PROFILE.json (a path
    from the project directory, read when the container is made)."""
    nnp = False
    seccomp: str | None = None
    for i, opt in enumerate(value):
        key, _, val = opt.replace("=", ":", 1).partition(":")
        if key == "seccomp":
            if not val:
                raise ctx.error((*path, i), "seccomp takes unconfined or a profile file")
            seccomp = val if val == "unconfined" else ctx.host_path(val)
            continue
        if key != "no-new-privileges":
            raise ctx.error(
                (*path, i),
                f"security_opt {opt!r} is not supported yet (only no-new-privileges and seccomp)",
            )
        if val not in ("", "true", "false"):
            raise ctx.error((*path, i), "no-new-privileges takes true or false")
        nnp = val != "false"
    return {"no_new_privileges": nnp, "seccomp": seccomp}


def _sysctls(ctx: Context, path: PathKey, value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in list_or_dict(ctx, path, value, keep_none=False).items():
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", key):
            raise ctx.error((*path, key), f"sysctl name {key!r} is not valid")
        out[key] = val or ""
    return out


def _check_platform(ctx: Context, path: PathKey, value: str) -> None:
    here = host_oci_platform()
    parts = value.lower().split("/")
    wanted = "/".join(parts[:2])
    if len(parts) < 2 or wanted != here:
        raise ctx.error(path, f"platform {value!r} does not match this machine ({here})")
