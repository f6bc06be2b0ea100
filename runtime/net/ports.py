"""Which host ports a container's published ports get, checked before it starts.

A request is a container port with a host port, a host port range (the first free one of it is
taken) or no host port (the kernel's pick among ephemeral ports, as Docker does). A host port is
taken when one of our rules publishes it already (``in_use``, host-wide: every state root's) or
when a socket is bound to it: we try to bind it ourselves, which fails when something listens.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runtime.net.nft import Binding


class PortError(ValueError):
    """A port that cannot be published; the message names it."""


@dataclass(frozen=True)
class Request:
    """One port to publish: container ``port``/``protocol`` on ``host_ip`` ('' for all),
    host ports ``host_start``..``host_end`` (None: any)."""

    port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_start: int | None = None
    host_end: int | None = None

    def describe(self) -> str:
        host = ""
        if self.host_start is not None:
            host = str(self.host_start)
            if self.host_end not in (None, self.host_start):
                host += f"-{self.host_end}"
        where = f"{self.host_ip}:" if self.host_ip else ""
        return f"{where}{host}:{self.port}/{self.protocol}"


Key = tuple[str, str, int]  # protocol, host ip ('' for all), host port


def overlaps(key: Key, used: Iterable[Key]) -> bool:
    """Whether publishing ``key`` clashes with one of ``used`` (an all-addresses binding
    clashes with every address)."""
    proto, ip, port = key
    return any(p == proto and n == port and (not ip or not i or i == ip) for p, i, n in used)


def _bindable(protocol: str, host_ip: str, port: int) -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # A port in TIME_WAIT is free for us; one with a listener is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise PortError(f"host address {host_ip} is not an address of this host") from None
            raise
    return True


def _ephemeral(protocol: str, host_ip: str) -> int:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host_ip or "0.0.0.0", 0))
        return int(sock.getsockname()[1])


def resolve(
    requests: Iterable[Request],
    address: str,
    in_use: Iterable[Key],
    bindable: Callable[[str, str, int], bool] = _bindable,
    ephemeral: Callable[[str, str], int] = _ephemeral,
) -> list[Binding]:
    """Concrete bindings to the container at ``address``; PortError for a port taken."""
    used = list(in_use)
    result = []
    for request in requests:
        if request.host_ip:
            try:
                ip = ipaddress.ip_address(request.host_ip)
            except ValueError:
                raise PortError(f"invalid host address in {request.describe()}") from None
            if ip.version != 4:
                raise PortError(f"{request.describe()}: only IPv4 host addresses can publish")
        if request.host_start is None:
            for _ in range(20):
                port = ephemeral(request.protocol, request.host_ip)
                if not overlaps((request.protocol, request.host_ip, port), used):
                    break
            else:
                raise PortError(f"{request.describe()}: no free host port found")
        else:
            end = request.host_end if request.host_end is not None else request.host_start
            for port in range(request.host_start, end + 1):
                key = (request.protocol, request.host_ip, port)
                if not overlaps(key, used) and bindable(*key):
                    break
            else:
                ports = f"{request.host_start}-{end}" if end > request.host_start else str(end)
                what = "every host port of" if end > request.host_start else "host port"
                raise PortError(f"{request.describe()}: {what} {ports} is already in use")
        used.append((request.protocol, request.host_ip, port))
        result.append(Binding(request.host_ip, port, request.protocol, address, request.port))
    return result
