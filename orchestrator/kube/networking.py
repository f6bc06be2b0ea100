"""Networking settings of the pod: ``network_mode``, ``hostname``, ``domainname``,
``extra_hosts``, static addresses; and the stack's networks, which Kubernetes does not have (every
pod of a cluster can reach every other unless NetworkPolicies say otherwise)."""

from __future__ import annotations

from typing import Any

from orchestrator.kube import names
from orchestrator.kube.base import Context
from orchestrator.stack.model import Service


def pod_network(ctx: Context, service: Service) -> dict[str, Any]:
    """Fields of the pod spec for the service's network settings."""
    spec: dict[str, Any] = {}
    note = ctx.notes.service
    mode = service.network_mode
    if mode == "host":
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        note(
            service.name,
            "network_mode",
            "host: the pod uses its node's network (hostNetwork), not this machine's; its "
            "ports are taken on whichever node runs it, and it needs a privileged pod "
            "security level",
        )
    elif mode == "none":
        note(service.name, "network_mode", "none: a pod always has a network; it keeps one")
    elif mode is not None and mode.startswith(("service:", "container:")):
        note(
            service.name,
            "network_mode",
            f"{mode}: containers share a network namespace only inside one pod; this service "
            "runs in a pod of its own",
        )
    for net in service.networks:
        if net.ipv4_address or net.ipv6_address:
            note(
                service.name,
                f"networks.{net.name}",
                "static addresses have no equivalent: the pod gets an address from the cluster",
            )
    if service.hostname is not None:
        host = service.hostname.lower()
        if names.is_dns_label(host):
            spec["hostname"] = host
        else:
            note(
                service.name,
                "hostname",
                f"{service.hostname!r} is not a DNS label Kubernetes takes as a pod's hostname; "
                "the pod keeps its own",
            )
    if service.domainname is not None:
        note(
            service.name,
            "domainname",
            "has no equivalent (a pod's domain is its namespace's); not kept",
        )
    aliases: dict[str, list[str]] = {}
    for i, h in enumerate(service.extra_hosts):
        if h.address == "host-gateway":
            note(
                service.name,
                f"extra_hosts[{i}]",
                f"{h.hostname}: the host gateway has no equivalent in a cluster; left out",
            )
            continue
        aliases.setdefault(h.address, []).append(h.hostname)
    if aliases:
        spec["hostAliases"] = [{"ip": ip, "hostnames": hosts} for ip, hosts in aliases.items()]
    return spec


def stack_networks(ctx: Context, policies: bool) -> None:
    """Warnings for the stack's networks: with ``policies``, their separation is kept by
    NetworkPolicies (:mod:`.policies`), which not every network plugin enforces."""
    used: dict[str, list[str]] = {}
    for svc in ctx.stack.services.values():
        for attached in svc.networks:
            used.setdefault(attached.name, []).append(svc.name)
    if policies:
        ctx.notes.add(
            "networks",
            "the separation between the stack's networks is kept by NetworkPolicies, which "
            "take effect only where the cluster's network plugin enforces them",
        )
    for key, net in ctx.stack.networks.items():
        if key not in used:
            continue
        where = f"networks.{key}"
        if net.external:
            ctx.notes.add(f"{where}.external", "external networks have no equivalent; ignored")
            continue
        for attr, value in (
            ("driver_opts", bool(net.driver_opts)),
            ("ipam", bool(net.ipam)),
            ("enable_ipv6", net.enable_ipv6),
            ("attachable", net.attachable),
            ("labels", bool(net.labels)),
        ):
            if value:
                ctx.notes.add(
                    f"{where}.{attr}",
                    "has no equivalent (there are no networks to configure in a cluster); not kept",
                )
