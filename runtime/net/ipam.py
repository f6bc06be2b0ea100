"""Address management, pure logic: which subnet a new network gets, which address a container
gets in it. The caller holds the locks and keeps the records (orchestrator.networks).

Subnets are carved from pools, as Docker's default-address-pools: a base network cut into
subnets of one size. A subnet is free when it overlaps nothing the host already uses (its
addresses' networks and routes) and no other network of ours. Addresses are handed out after
the last one handed out in that subnet (wrapping round), as Docker does, so that a recreated
container gets a new address and nobody keeps talking to the old one by mistake.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network


class IpamError(ValueError):
    """A subnet or address that cannot be had; the message says which and why."""


@dataclass(frozen=True)
class Pool:
    base: Network
    size: int  # prefix length of the subnets cut from ``base``

    def subnets(self) -> Iterable[Network]:
        return self.base.subnets(new_prefix=self.size)


# Docker's defaults: 172.17-31.0.0/16, then 192.168.0.0/16 cut in /20s.
DEFAULT_POOLS = (
    Pool(ipaddress.IPv4Network("172.17.0.0/16"), 16),
    *(Pool(ipaddress.IPv4Network(f"172.{n}.0.0/16"), 16) for n in range(18, 32)),
    Pool(ipaddress.IPv4Network("192.168.0.0/16"), 20),
)


def parse_pools(text: str) -> tuple[Pool, ...]:
    """``BASE/LEN:SIZE,...`` (``10.99.0.0/16:24``); ``SIZE`` defaults to 24."""
    pools = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        base_text, _, size_text = item.partition(":")
        try:
            base = ipaddress.IPv4Network(base_text)
            size = int(size_text) if size_text else 24
        except ValueError as exc:
            raise IpamError(f"address pool {item!r}: {exc}") from None
        if not base.prefixlen <= size <= 30:
            raise IpamError(f"address pool {item!r}: size must be from /{base.prefixlen} to /30")
        pools.append(Pool(base, size))
    if not pools:
        raise IpamError("no address pool given")
    return tuple(pools)


def parse_subnet(text: str) -> Network:
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise IpamError(f"invalid subnet {text!r}: {exc}") from None
    if subnet.prefixlen > 30:
        raise IpamError(f"subnet {text} is too small: at most /30")
    return subnet


def choose_subnet(pools: Iterable[Pool], taken: Iterable[Network]) -> Network:
    """The first subnet of the pools that overlaps nothing ``taken``."""
    used = list(taken)
    for pool in pools:
        for subnet in pool.subnets():
            if not any(subnet.overlaps(other) for other in used):
                return subnet
    raise IpamError("every subnet of the address pools is in use: give --subnet")


def check_subnet(subnet: Network, ours: Iterable[Network], host: Iterable[Network]) -> None:
    for other in ours:
        if subnet.overlaps(other):
            raise IpamError(f"subnet {subnet} overlaps network {other} of ours")
    for other in host:
        if subnet.overlaps(other):
            raise IpamError(f"subnet {subnet} overlaps {other}, already in use on this host")


def gateway_for(subnet: Network, text: str | None) -> str:
    """The bridge's address: ``text`` (checked), else the subnet's first host."""
    if text is None:
        return str(next(subnet.hosts()))
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise IpamError(f"invalid gateway {text!r}") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise IpamError(f"gateway {text} is not a host address of subnet {subnet}")
    return str(address)


def check_address(subnet: Network, text: str, reserved: Iterable[str]) -> str:
    """A requested address, checked: valid, a host of ``subnet``, not ``reserved``."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise IpamError(f"invalid IP address {text!r}") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise IpamError(f"address {text} is outside subnet {subnet}")
    if str(address) in set(reserved):
        raise IpamError(f"address {text} is already in use on this network")
    return str(address)


def next_address(subnet: Network, reserved: Iterable[str], after: str | None = None) -> str:
    """The first free host address after ``after`` (the last one handed out), wrapping."""
    # (our own records' dotted quads: inet_aton reads them ten times faster than
    # IPv4Address, and every lease of the network is read at every creation)
    taken = {int.from_bytes(socket.inet_aton(a), "big") for a in reserved}
    first = int(subnet.network_address) + 1
    last = int(subnet.broadcast_address) - 1
    count = last - first + 1
    start = first
    if after is not None:
        previous = int(ipaddress.IPv4Address(after))
        if first <= previous <= last:
            start = previous + 1 if previous < last else first
    if len(taken) < count:
        for step in range(count):
            candidate = first + (start - first + step) % count
            if candidate not in taken:
                return str(ipaddress.IPv4Address(candidate))
    raise IpamError(f"no free address left in subnet {subnet}")


def mac_for(address: str) -> str:
    """A MAC address made from the IPv4 address (Docker's 02:42 scheme): stable for one
    address, so a neighbour's ARP entry for an address reused later is still right."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)
