"""Run's network flags and a stack service's network keys, as the description's fields
(orchestrator.netconfig). Each bad value is one UserError naming its flag and value."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError
from orchestrator.netconfig import JOIN_PREFIXES, Endpoint, Link, Publish, is_bridged

if TYPE_CHECKING:
    from orchestrator.stack.model import Port, Service


def network_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The networking fields of a ContainerDescription from run's (or create's) flags."""
    from orchestrator.stack.units import UnitError, parse_extra_host, parse_ports

    names = list(args.network) or ["none"]
    mode = names[0]
    if len(names) > 1 and not all(is_bridged(n) for n in names):
        raise UserError(f"--network {' '.join(names)}: none, host and container: stand alone")
    for name in names:
        if name.startswith(JOIN_PREFIXES) and not name.partition(":")[2]:
            raise UserError(f"--network {name}: name the container to join")
    bridged = is_bridged(mode)
    for flag, given in (
        ("--ip", args.ip),
        ("--network-alias", args.network_alias),
        ("-p", args.publish),
        ("-P", args.publish_all),
        ("--link", args.link),
    ):
        if given and not bridged:
            raise UserError(f"{flag} needs a network (--network NAME), not --network {mode}")
    ip = None
    if args.ip is not None:
        ip = _ipv4(args.ip, "--ip")
    endpoints = tuple(
        Endpoint(name, tuple(args.network_alias) if i == 0 else (), ip if i == 0 else None)
        for i, name in enumerate(names)
        if bridged
    )
    publish: list[Publish] = []
    for spec in args.publish:
        try:
            publish += publish_of(parse_ports(spec))
        except (UnitError, ValueError) as exc:
            raise UserError(f"-p {spec}: {_message(exc)}") from None
    extra_hosts = []
    for item in args.add_host:
        try:
            host = parse_extra_host(item)
        except UnitError as exc:
            raise UserError(f"--add-host {item}: {exc.message}") from None
        extra_hosts.append((host.hostname, host.address))
    links = []
    for item in args.link:
        target, _, alias = item.partition(":")
        if not target or ":" in alias:
            raise UserError(f"--link {item}: expected NAME or NAME:ALIAS")
        links.append(Link(target, alias or target))
    for flag, values in (("--dns-search", args.dns_search), ("--dns-option", args.dns_option)):
        for value in values:
            if not value or any(c.isspace() for c in value):
                raise UserError(f"{flag} {value!r}: one word, no spaces")
    return {
        "network": mode,
        "networks": endpoints,
        "publish": tuple(publish),
        "publish_all": bool(args.publish_all),
        "expose": tuple(expose_of(args.expose, "--expose")),
        "dns": tuple(_ip(s, "--dns") for s in args.dns),
        "dns_search": tuple(args.dns_search),
        "dns_options": tuple(args.dns_option),
        "extra_hosts": tuple(extra_hosts),
        "links": tuple(links),
        "domainname": args.domainname,
    }


def publish_of(ports: Iterable[Port]) -> list[Publish]:
    """Publish requests from the stack model's ports (also what ``-p`` parses into)."""
    result = []
    for port in ports:
        host_ip = port.host_ip or ""
        if host_ip and ipaddress.ip_address(host_ip).version != 4:
            raise ValueError(f"host address {host_ip}: only IPv4 addresses can publish")
        if host_ip in ("0.0.0.0",):
            host_ip = ""
        result.append(
            Publish(port.target, port.protocol, host_ip, port.published_start, port.published_end)
        )
    return result


def expose_of(items: Iterable[Any], what: str) -> list[str]:
    """``80``, ``53/udp``, ``8000-8002`` as ``80/tcp``-style entries, ranges expanded."""
    from orchestrator.stack.units import UnitError, parse_expose

    result = []
    for item in items:
        try:
            text = parse_expose(item)
        except UnitError as exc:
            raise UserError(f"{what} {item}: {exc.message}") from None
        ports, _, proto = text.partition("/")
        start, _, end = ports.partition("-")
        for port in range(int(start), int(end or start) + 1):
            result.append(f"{port}/{proto or 'tcp'}")
    return result


def service_fields(
    project: str, service: Service, network_names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The networking fields of a stack service's container. ``network_names``: the stack's
    network keys to the networks' real names (default ``<project>_<key>``, Compose's)."""
    names = network_names or {}
    mode = service.network_mode
    endpoints = tuple(
        Endpoint(
            names.get(n.name, f"{project}_{n.name}"),
            tuple(n.aliases),
            n.ipv4_address,
        )
        for n in service.networks
    )
    if mode is None and not endpoints:  # Compose's default network
        endpoints = (Endpoint(names.get("default", f"{project}_default")),)
    if mode is None:
        mode = endpoints[0].network
    try:
        publish = tuple(publish_of(service.ports))
    except ValueError as exc:
        raise UserError(f"services.{service.name}.ports: {exc}") from None
    return {
        "network": mode,
        "networks": endpoints if is_bridged(mode) else (),
        "publish": publish if is_bridged(mode) else (),
        "expose": tuple(expose_of(service.expose, f"services.{service.name}.expose")),
        "extra_hosts": tuple((h.hostname, h.address) for h in service.extra_hosts),
        "links": tuple(Link(link.service, link.alias) for link in service.links),
        "domainname": service.domainname,
    }


def _ip(text: str, flag: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UserError(f"{flag} {text}: not an IP address") from None


def _ipv4(text: str, flag: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise UserError(f"{flag} {text}: not an IPv4 address") from None


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", exc))
