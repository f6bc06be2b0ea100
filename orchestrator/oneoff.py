"""A stack's one-off containers (``orchestrator -f FILE run SERVICE``), Compose's way: the
service's configuration with the command line's overrides, named
``<project>-<service>-run-<12 hex>``, marked ``Identity.oneoff`` (so that the supervisor never
counts it as a replica or an orphan), without the service's published ports and restart policy.

    prepare(root, containers, stack, service)   # the networks and volumes it needs
    description = describe(stack, service, Overrides(command=("sh",)), name)
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.description import (
    NETWORK_LABEL,
    PROJECT_LABEL,
    ContainerDescription,
    from_service,
)
from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.containers import Containers
    from orchestrator.stack.model import Stack


@dataclass(frozen=True)
class Overrides:
    """What ``run``'s flags change in the service's configuration (None: the service's)."""

    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    publish: tuple[Any, ...] = ()  # netconfig.Publish, from -p
    service_ports: bool = False  # --service-ports: the service's own ports too
    mounts: tuple[Any, ...] = ()  # mountspec.Mount, from -v
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    labels: Mapping[str, str] | None = None
    # --use-aliases: the service's network aliases (its name among them); else it joins the
    # service's networks under its own name only, as Compose's one-offs do
    use_aliases: bool = False


def oneoff_name(project: str, service: str) -> str:
    return f"{project}-{service}-run-{secrets.token_hex(6)}"


def describe(
    stack: Stack,
    service_name: str,
    overrides: Overrides,
    name: str,
    network_names: Mapping[str, str],
) -> ContainerDescription:
    """The one-off container of ``service_name``: the service's description (as the
    supervisor makes its replicas') with ``overrides``."""
    from orchestrator.stackvolumes import volume_names

    service = stack.services[service_name]
    base = from_service(
        stack.name,
        service,
        0,
        name,
        service.image or f"{stack.name}-{service_name}",
        network_names,
        volume_names(stack),
        {s: f"{stack.name}-{s}-1" for s in stack.services},
        (stack.secrets, stack.configs),
    )
    command = base.command
    if overrides.command:
        command = overrides.command
    elif overrides.entrypoint is not None:
        command = None  # a new entrypoint drops the command too (the bundle's rule)
    targets = {m.target for m in overrides.mounts}
    publish = (base.publish if overrides.service_ports else ()) + overrides.publish
    if publish and not base.networks:
        raise UserError(f"-p: service {service_name} has no network to publish on")
    networks = tuple(
        replace(
            endpoint,
            aliases=(*endpoint.aliases, service_name) if overrides.use_aliases else (),
        )
        for endpoint in base.networks
    )
    return replace(
        base,
        networks=networks,
        command=command,
        entrypoint=overrides.entrypoint if overrides.entrypoint is not None else base.entrypoint,
        env=_merge_env(base.env, overrides.env),
        user=overrides.user or base.user,
        workdir=overrides.workdir or base.workdir,
        publish=publish,
        mounts=tuple(m for m in base.mounts if m.target not in targets) + overrides.mounts,
        tty=overrides.tty,
        interactive=overrides.interactive,
        auto_remove=overrides.auto_remove,
        labels={**base.labels, **(overrides.labels or {})},
        identity=replace(base.identity, oneoff=True),
    )


def _merge_env(base: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    """The service's environment with ``-e`` entries replacing those of the same key."""
    merged: dict[str, str] = {}
    for item in (*base, *extra):
        merged[item.partition("=")[0]] = item
    return tuple(merged.values())


def prepare(root: Path, containers: Containers, stack: Stack, service_name: str) -> dict[str, str]:
    """(blocking) The networks the service's containers use, made where missing (as the
    supervisor makes them for ``up``, with its labels, so that ``down`` removes them), and
    the stack's named volumes. The stack's network keys to the networks' names."""
    from orchestrator import stackvolumes

    service = stack.services[service_name]
    names = {key: net.name for key, net in stack.networks.items()}
    needed = set()
    if service.network_mode is None:
        needed = {n.name for n in service.networks} or {"default"}
    for key in sorted(needed):
        network = stack.networks.get(key)
        name = names.setdefault(key, f"{stack.name}_{key}")
        if network is not None and network.external:
            containers.networks.get(name)  # (NotFoundError names it)
            continue
        ipam = network.ipam[0] if network is not None and network.ipam else None
        labels = dict(network.labels) if network is not None else {}
        labels.update({PROJECT_LABEL: stack.name, NETWORK_LABEL: key})
        containers.networks.ensure(
            name,
            ipam.subnet if ipam else None,
            ipam.gateway if ipam else None,
            bool(network is not None and network.internal),
            labels,
        )
    stackvolumes.ensure(root, stack)
    return names
