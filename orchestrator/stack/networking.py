"""Networking keys to the model: top-level ``networks`` (IPAM included), and a service's
``networks``, ``ports`` and ``extra_hosts``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from orchestrator.stack.context import Context, list_or_dict, scalar_text
from orchestrator.stack.model import (
    ExtraHost,
    FrozenMap,
    IpamConfig,
    Network,
    Port,
    ServiceNetwork,
)
from orchestrator.stack.units import (
    UnitError,
    check_hostname,
    make_extra_host,
    parse_extra_host,
    parse_int,
    parse_ip,
    parse_port_range,
    parse_ports,
    parse_protocol,
)
from orchestrator.stack.yamlsafe import PathKey


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
                {k: scalar_text(v) for k, v in (spec.get("driver_opts") or {}).items()}
            ),
            ipam=tuple(ipam),
            internal=bool(spec.get("internal", False)),
            enable_ipv6=bool(spec.get("enable_ipv6", False)),
            attachable=bool(spec.get("attachable", False)),
            labels=FrozenMap(
                {
                    k: v or ""
                    for k, v in list_or_dict(
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


def convert_service_networks(ctx: Context, path: PathKey, value: Any) -> tuple[ServiceNetwork, ...]:
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


def convert_ports(ctx: Context, path: PathKey, value: list[Any]) -> tuple[Port, ...]:
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


def convert_extra_hosts(ctx: Context, path: PathKey, value: Any) -> tuple[ExtraHost, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(
            ctx.parse((*path, host), make_extra_host, host, scalar_text(addr))
            for host, addr in value.items()
        )
    return tuple(ctx.parse((*path, i), parse_extra_host, item) for i, item in enumerate(value))
