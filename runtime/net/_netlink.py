"""The kernel's network objects through rtnetlink: the one module that imports pyroute2.

Each function opens one ``IPRoute``, does its few requests and closes it (pyroute2's sync
IPRoute runs its own asyncio loop, so it is safe from a thread of a trio process). Functions
that make something are idempotent (``ensure_*``) or say plainly what they did, so that a
command interrupted half way can be replayed by the next one.

Inside a container's network namespace we work through a netlink socket made there
(``route_socket_in``: by a throwaway thread; ``Runtime.open_socket`` does the same through the
fork server, some 6 ms slower): pyroute2 adopts it (``use_socket``), and nothing forks.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runtime.errors import Error

_MAIN_TABLE = 254


@contextmanager
def _iproute(sock: socket.socket | None = None) -> Iterator[Any]:
    from pyroute2 import IPRoute

    ipr = IPRoute(use_socket=sock) if sock is not None else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _fail(what: str, exc: BaseException) -> Error:
    code = _code(exc)
    reason = errno.errorcode.get(code, str(exc)) if code else str(exc)
    return Error(f"{what}: {reason}")


def link_index(name: str) -> int | None:
    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def link_names(prefix: str) -> list[str]:
    """Names of the host's interfaces that start with ``prefix``."""
    with _iproute() as ipr:
        names = [link.get("ifname") for link in ipr.get_links()]
    return sorted(str(n) for n in names if n and str(n).startswith(prefix))


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """A bridge ``name``, up, with ``gateway/prefixlen`` on it (made or completed)."""
    with _iproute() as ipr:
        try:
            if not ipr.link_lookup(ifname=name):
                try:
                    ipr.link("add", ifname=name, kind="bridge")
                except Exception as exc:
                    if _code(exc) != errno.EEXIST:
                        raise
            index = ipr.link_lookup(ifname=name)[0]
            present = {
                (a.get("IFA_LOCAL") or a.get("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=index, family=socket.AF_INET)
            }
            if (gateway, prefixlen) not in present:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            ipr.link("set", index=index, state="up")
        except Exception as exc:
            raise _fail(f"bridge {name}", exc) from None
    # Published ports on 127.0.0.1 are rewritten to a container's address: the kernel lets
    # such packets out of an interface only when it routes localnet.
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


def delete_link(name: str) -> bool:
    """Delete the interface ``name`` (for a veth, both ends); False if there was none."""
    with _iproute() as ipr:
        try:
            found = ipr.link_lookup(ifname=name)
            if not found:
                return False
            ipr.link("del", index=found[0])
        except Exception as exc:
            if _code(exc) == errno.ENODEV:
                return False
            raise _fail(f"delete {name}", exc) from None
    return True


def add_veth(host_name: str, bridge: str, netns_fd: int, peer_name: str, mac: str) -> None:
    """A veth pair in one request: ``host_name`` up on ``bridge``, its peer ``peer_name`` (with
    ``mac``; brought up by ``configure_inside``) in the network namespace ``netns_fd``."""
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    try:
        master = socket.if_nametoindex(bridge)  # an ioctl: cheaper than a netlink round trip
    except OSError:
        raise Error(f"bridge {bridge} is missing") from None
    peer = {
        "attrs": [("IFLA_IFNAME", peer_name), ("IFLA_NET_NS_FD", netns_fd), ("IFLA_ADDRESS", mac)]
    }
    message = ifinfmsg()
    message.update(flags=1, change=1)  # IFF_UP
    message["attrs"] = [
        ("IFLA_IFNAME", host_name),
        ("IFLA_MASTER", master),
        (
            "IFLA_LINKINFO",
            {
                "attrs": [
                    ("IFLA_INFO_KIND", "veth"),
                    ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]}),
                ]
            },
        ),
    ]
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0) as sock:
        _exchange(sock, [(message, RTM_NEWLINK, flags)], f"veth {host_name}")


def configure_inside(
    sock: socket.socket, ifname: str, address: str, prefixlen: int, gateway: str | None
) -> None:
    """Through ``sock`` (a NETLINK_ROUTE socket made in the container's network namespace):
    ``ifname`` up with ``address/prefixlen``, and the default route via ``gateway`` if given.

    Two round trips: the interface's index, then every change in one batch (pyroute2's
    messages, sent together and acknowledged in order; its IPRoute would take one round trip
    and an event-loop turn per change)."""
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    lookup = ifinfmsg()
    lookup["attrs"] = [("IFLA_IFNAME", ifname)]
    replies = _exchange(sock, [(lookup, RTM_GETLINK, NLM_F_REQUEST)], f"configure {ifname}")
    index = replies[0]
    up = ifinfmsg()
    up.update(index=index, flags=1, change=1)
    addr = ifaddrmsg()
    addr.update(family=socket.AF_INET, prefixlen=prefixlen, index=index)
    addr["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    batch: list[tuple[Any, int, int]] = [
        (up, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK),
        (addr, RTM_NEWADDR, create),
    ]
    if gateway:
        route = rtmsg()
        route.update(family=socket.AF_INET, table=_MAIN_TABLE, proto=4, scope=0, type=1)
        route["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
        batch.append((route, RTM_NEWROUTE, create))
    _exchange(sock, batch, f"configure {ifname}")


_NLMSG_ERROR = 2
_NLMSG_HEADER = struct.Struct("=IHHII")


def _exchange(sock: socket.socket, messages: list[tuple[Any, int, int]], what: str) -> list[int]:
    """Send ``messages`` (pyroute2 message, type, flags) in one datagram; wait for each one's
    answer. Raise on the first error; for an RTM_NEWLINK answer, its interface index."""
    data = b""
    pending: dict[int, None] = {}
    for seq, (message, kind, flags) in enumerate(messages, start=1):
        message["header"].update(type=kind, flags=flags, sequence_number=seq)
        message.encode()
        data += message.data
        pending[seq] = None
    sock.send(data)
    results: dict[int, int] = {}
    while len(results) < len(pending):
        chunk = sock.recv(65536)
        offset = 0
        while offset + _NLMSG_HEADER.size <= len(chunk):
            length, kind, _, seq, _ = _NLMSG_HEADER.unpack_from(chunk, offset)
            if length < _NLMSG_HEADER.size:
                break
            body = offset + _NLMSG_HEADER.size
            if kind == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", chunk, body)[0]
                if code:
                    raise Error(f"{what}: {errno.errorcode.get(code, str(code))}")
                results.setdefault(seq, 0)
            elif seq in pending:
                results[seq] = struct.unpack_from("=i", chunk, body + 4)[0]  # ifi_index
            offset += (length + 3) & ~3
    return [results[seq] for seq in sorted(pending)]


def delete_inside(sock: socket.socket, ifname: str) -> bool:
    """Delete ``ifname`` in the namespace of ``sock`` (a veth: its host end goes too)."""
    with _iproute(sock) as ipr:
        try:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                return False
            ipr.link("del", index=found[0])
        except Exception as exc:
            if _code(exc) == errno.ENODEV:
                return False
            raise _fail(f"delete {ifname}", exc) from None
    return True


def inside_names(sock: socket.socket) -> list[str]:
    with _iproute(sock) as ipr:
        return [str(link.get("ifname")) for link in ipr.get_links()]


def route_socket_in(netns_fd: int) -> socket.socket:
    """A NETLINK_ROUTE socket made in the network namespace ``netns_fd``.

    A throwaway thread joins the namespace, makes the socket and ends: joining a network
    namespace (unlike a mount or user namespace) is allowed to one thread of a multi-threaded
    process and changes that thread only, so nothing forks and no other thread of ours ever
    runs in the container's namespace. A socket keeps the namespace it was made in."""
    import threading

    from runtime.linux import syscalls as sc

    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        try:
            sc.setns(netns_fd, sc.CLONE_NEWNET)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=make, name="orc-netns")
    thread.start()
    thread.join()
    if failed:
        raise Error(f"join network namespace: {failed[0]}")
    return made[0]


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host already uses: its addresses' networks and the destinations
    of its routes (the default route aside: it covers everything and conflicts with nothing)."""
    found: set[ipaddress.IPv4Network] = set()
    with _iproute() as ipr:
        for addr in ipr.get_addr(family=socket.AF_INET):
            local = addr.get("IFA_LOCAL") or addr.get("IFA_ADDRESS")
            if local:
                found.add(ipaddress.IPv4Network(f"{local}/{addr['prefixlen']}", strict=False))
        for route in ipr.get_routes(family=socket.AF_INET, table=_MAIN_TABLE):
            if route["dst_len"] == 0:
                continue
            dst = route.get("RTA_DST")
            if dst:
                found.add(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    return sorted(found)


def _sysctl(key: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)
    except OSError as exc:
        raise Error(f"sysctl {key.replace('/', '.')}: {exc.strerror}") from None


def enable_forwarding() -> None:
    """IPv4 forwarding, as Docker turns it on: without it no container reaches past its
    bridge, and published ports answer only the host itself."""
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        if f.read().strip() == "1":
            return
    _sysctl("net/ipv4/ip_forward", "1")
