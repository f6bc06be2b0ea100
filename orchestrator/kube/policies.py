"""The stack's networks as NetworkPolicies.

In Compose, services reach each other only over a network they share, and the world reaches only
published ports. A cluster lets every pod reach every other, so when a stack separates services
(more than one network, or an ``internal`` one) the separation is written as policies:

- each pod is labelled with its networks (``network.orchestrator/NAME: "true"``; a service with
  ``network_mode: service:X`` shares X's);
- per network, a policy lets its members receive from its members (policies add up: a pod on two
  networks hears both);
- per service that publishes ports, a policy lets anyone reach those ports;
- a dependency waited for across networks (``depends_on`` is allowed without a shared network)
  lets the waiting service reach the port the wait connects to;
- pods whose networks are all ``internal`` may send only to their networks' members, and DNS.

With one ordinary network there is nothing to separate inside the stack, and nothing is written.
Policies take effect only where the cluster's network plugin enforces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.kube import names
from orchestrator.kube.base import Context, make
from orchestrator.kube.services import ContainerPort
from orchestrator.kube.waits import dependencies
from orchestrator.stack.model import Service

LABEL_PREFIX = "network.orchestrator/"


def service_networks(services: Mapping[str, Service]) -> dict[str, list[str]]:
    """The networks each service is on (``network_mode: service:X`` takes X's)."""
    out: dict[str, list[str]] = {}
    for name, svc in services.items():
        mode = svc.network_mode or ""
        source = services.get(mode.removeprefix("service:")) if mode.startswith("service:") else svc
        out[name] = [n.name for n in source.networks] if source is not None else []
    return out


def needed(ctx: Context, networks: dict[str, list[str]]) -> bool:
    used = {n for nets in networks.values() for n in nets}
    internal = any(ctx.stack.networks[n].internal for n in used if n in ctx.stack.networks)
    return len(used) > 1 or internal


def network_label(network: str) -> str:
    return LABEL_PREFIX + names.dns_label(network)


def pod_labels(networks: list[str]) -> dict[str, str]:
    return {network_label(n): "true" for n in networks}


def write_policies(
    ctx: Context,
    services: Mapping[str, Service],
    networks: dict[str, list[str]],
    ports: Mapping[str, list[ContainerPort]],
    jobs: set[str],
) -> None:
    stack = ctx.stack.name
    part_of = names.stack_labels(stack)[names.PART_OF]
    labels = names.stack_labels(stack)
    used = sorted({n for nets in networks.values() for n in nets})
    internal = {n for n in used if n in ctx.stack.networks and ctx.stack.networks[n].internal}

    def members(network: str) -> dict[str, Any]:
        return {"matchLabels": {names.PART_OF: part_of, network_label(network): "true"}}

    for network in used:
        name = ctx.require(
            "NetworkPolicy", names.derived("network", network), f"networks.{network}"
        )
        spec: dict[str, Any] = {
            "podSelector": members(network),
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": members(network)}]}],
        }
        ctx.add(
            make("networking.k8s.io/v1", "NetworkPolicy", name, labels, ctx.namespace, spec=spec)
        )
    for network in sorted(internal):
        name = ctx.require(
            "NetworkPolicy", names.derived("internal", network), f"networks.{network}"
        )
        selector = members(network)
        # Only pods whose every network is internal lose the outside world.
        selector["matchExpressions"] = [
            {"key": network_label(n), "operator": "DoesNotExist"} for n in used if n not in internal
        ]
        spec = {
            "podSelector": selector,
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"podSelector": members(network)}]},
                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            ],
        }
        ctx.add(
            make("networking.k8s.io/v1", "NetworkPolicy", name, labels, ctx.namespace, spec=spec)
        )
    for svc_name, svc in services.items():
        k8s = ctx.name_of(svc_name)
        selector = {"matchLabels": names.service_selector(stack, k8s)}
        published = sorted(
            {(p.target, p.protocol.upper()) for p in svc.ports if not _loopback(p.host_ip)}
        )
        if published and svc_name not in jobs:
            name = ctx.require(
                "NetworkPolicy", names.derived(k8s, "published"), f"services.{svc_name}"
            )
            spec = {
                "podSelector": selector,
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": p, "protocol": proto} for p, proto in published]}],
            }
            ctx.add(
                make(
                    "networking.k8s.io/v1",
                    "NetworkPolicy",
                    name,
                    names.service_labels(stack, k8s),
                    ctx.namespace,
                    spec=spec,
                )
            )
        _cross_network_waits(ctx, svc, networks, ports, jobs)
        nets = networks.get(svc_name, [])
        waits_for_jobs = any(
            d.condition == "service_completed_successfully" and d.service in ctx.service_names
            for d in svc.depends_on
        )
        if waits_for_jobs and nets and set(nets) <= internal:
            ctx.notes.service(
                svc_name,
                "networks",
                "only on internal networks, whose policy lets it send to their members and DNS "
                "only: its wait for a Job cannot reach the API server (allow that egress)",
            )


def _cross_network_waits(
    ctx: Context,
    svc: Service,
    networks: dict[str, list[str]],
    ports: Mapping[str, list[ContainerPort]],
    jobs: set[str],
) -> None:
    stack = ctx.stack.name
    for dep, _, key in dependencies(svc):
        if dep not in ctx.service_names or dep in jobs:
            continue
        if set(networks.get(dep, [])) & set(networks.get(svc.name, [])):
            continue
        tcp = [p for p in ports.get(dep, []) if p.protocol == "TCP"]
        if not tcp:
            continue
        target, source = ctx.name_of(dep), ctx.name_of(svc.name)
        name = ctx.unique(
            "NetworkPolicy", names.derived(target, f"from-{source}"), f"services.{svc.name}.{key}"
        )
        ctx.notes.service(
            svc.name,
            key,
            f"{dep!r} shares no network with it: a policy lets it reach {target}:{tcp[0].port} "
            "so that its wait can connect",
        )
        spec = {
            "podSelector": {"matchLabels": names.service_selector(stack, target)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": names.service_selector(stack, source)}}
                    ],
                    "ports": [{"port": tcp[0].port, "protocol": "TCP"}],
                }
            ],
        }
        ctx.add(
            make(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                name,
                names.service_labels(stack, target),
                ctx.namespace,
                spec=spec,
            )
        )


def _loopback(host_ip: str | None) -> bool:
    return host_ip is not None and (host_ip.startswith("127.") or host_ip == "::1")
