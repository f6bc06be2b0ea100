"""The networking part of a container's description (orchestrator.description): which networks
it joins with which aliases and address, what it publishes, its name servers, extra hosts and
legacy links. Plain frozen data; orchestrator.networks gives it effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A network to join: its name, the container's aliases on it, an address (else any)."""

    network: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None


@dataclass(frozen=True)
class Publish:
    """A container port published on the host: ``host_start``..``host_end`` (one port when
    equal; None: any free port), on ``host_ip`` ('' for every address of the host)."""

    port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_start: int | None = None
    host_end: int | None = None


@dataclass(frozen=True)
class Link:
    """A legacy link: ``target`` (a container name, or for a stack a service of its project)
    known in this container as ``alias``."""

    target: str
    alias: str


# Modes of ``ContainerDescription.network`` that are not a network's name.
MODES = ("none", "host")
JOIN_PREFIXES = ("container:", "service:")


def is_bridged(network: str) -> bool:
    """Whether ``network`` names networks to join (not none, host, container: or service:)."""
    return network not in MODES and not network.startswith(JOIN_PREFIXES)


def restore(values: dict[str, Any]) -> None:
    """Turn a record's JSON lists back into the description's tuples and dataclasses."""
    values["networks"] = tuple(
        Endpoint(str(e["network"]), tuple(e.get("aliases") or ()), e.get("ip"))
        for e in values.get("networks") or ()
    )
    values["publish"] = tuple(Publish(**p) for p in values.get("publish") or ())
    values["links"] = tuple(Link(**link) for link in values.get("links") or ())
    values["extra_hosts"] = tuple(
        (str(name), str(address)) for name, address in values.get("extra_hosts") or ()
    )
    for key in ("expose", "dns", "dns_search", "dns_options"):
        values[key] = tuple(values.get(key) or ())
