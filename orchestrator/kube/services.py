"""Services: how other pods, and the world, reach a stack service.

- Every long-running service gets a Service of its own name, so that the name others use
  (``db:5432``) keeps resolving: with the ports it exposes or publishes, a ClusterIP Service on
  the container ports; without any, a headless one, whose name resolves to the pods themselves,
  on every port, as a Compose name does.
- Published ports (``ports:``) are also offered outside the cluster by a LoadBalancer Service
  ``NAME-published`` on the published port; ports published on a loopback address stay inside.
- Aliases (``links`` aliases, network ``aliases``, ``container_name``) get a Service each, the
  same as the service's own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from orchestrator.kube import names
from orchestrator.kube.base import Context, make
from orchestrator.stack.model import Service


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str  # TCP, UDP or SCTP
    name: str
    app_protocol: str | None = None


def container_ports(service: Service) -> list[ContainerPort]:
    """The container ports of ``ports`` and ``expose``, each once, named uniquely."""
    seen: dict[tuple[int, str], ContainerPort] = {}
    used_names: set[str] = set()

    def add(port: int, protocol: str, wanted: str | None, app: str | None) -> None:
        proto = protocol.upper()
        if (port, proto) in seen:
            return
        name = names.port_name(proto, port, wanted)
        if name in used_names:
            name = names.port_name(proto, port)
        used_names.add(name)
        seen[(port, proto)] = ContainerPort(port, proto, name, app)

    for p in service.ports:
        add(p.target, p.protocol, p.name, p.app_protocol)
    for text in service.expose:
        ports, _, proto = text.partition("/")
        start, _, end = ports.partition("-")
        for port in range(int(start), int(end or start) + 1):
            add(port, proto or "tcp", None, None)
    return list(seen.values())


def service_spec(selector: dict[str, str], ports: list[ContainerPort]) -> dict[str, Any]:
    """The spec of a service's own Service (and of its aliases)."""
    if not ports:
        return {"clusterIP": "None", "selector": dict(selector)}
    out = []
    for p in ports:
        entry: dict[str, Any] = {
            "name": p.name,
            "port": p.port,
            "targetPort": p.port,
            "protocol": p.protocol,
        }
        if p.app_protocol:
            entry["appProtocol"] = p.app_protocol
        out.append(entry)
    return {"type": "ClusterIP", "selector": dict(selector), "ports": out}


def name_service(ctx: Context, service: Service, name: str, spec: dict[str, Any]) -> None:
    ctx.add(
        make(
            "v1",
            "Service",
            name,
            names.service_labels(ctx.stack.name, ctx.name_of(service.name)),
            ctx.namespace,
            spec=spec,
        )
    )


def published_service(ctx: Context, service: Service, name: str, selector: dict[str, str]) -> None:
    """A LoadBalancer Service for the ports a service publishes on the host."""
    ports: list[dict[str, Any]] = []
    taken: set[tuple[int, str]] = set()
    for i, p in enumerate(service.ports):
        key = f"ports[{i}]"
        if p.host_ip is not None:
            address = ipaddress.ip_address(p.host_ip)
            if address.is_loopback:
                ctx.notes.service(
                    service.name,
                    key,
                    f"published on {p.host_ip} only: kept inside the cluster (reach it with "
                    f"kubectl port-forward service/{name} {p.published or p.target}:{p.target})",
                )
                continue
            if not address.is_unspecified:
                ctx.notes.service(
                    service.name,
                    key,
                    f"publishing on the host address {p.host_ip} has no equivalent: the load "
                    "balancer's address is used",
                )
        published = p.published_start if p.published_start is not None else p.target
        if p.published_end is not None and p.published_end != p.published_start:
            ctx.notes.service(
                service.name,
                key,
                f"a host port range ({p.published}) has no equivalent: port {published} is used",
            )
        proto = p.protocol.upper()
        if (published, proto) in taken:
            continue
        taken.add((published, proto))
        ports.append(
            {
                "name": names.port_name(proto, published),
                "port": published,
                "targetPort": p.target,
                "protocol": proto,
            }
        )
    if not ports:
        return
    external = ctx.require("Service", names.derived(name, "published"), f"services.{service.name}")
    ctx.add(
        make(
            "v1",
            "Service",
            external,
            names.service_labels(ctx.stack.name, name),
            ctx.namespace,
            spec={"type": "LoadBalancer", "selector": dict(selector), "ports": ports},
        )
    )
