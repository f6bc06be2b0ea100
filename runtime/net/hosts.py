"""A container's /etc/hosts and /etc/resolv.conf, written as Docker writes them.

The files live in the container's directory and are bind-mounted into it, so a change (a peer
recreated with a new address, a container connected) must land in the same inode: a renamed
replacement would not be seen through the bind mount. ``write_in_place`` does that.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence

LOCALHOST = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)

# What Docker falls back to when the host names only loopback servers.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")


def render_hosts(
    hostname: str,
    own: Sequence[str] = (),
    peers: Iterable[tuple[str, Sequence[str]]] = (),
    extra: Iterable[tuple[str, str]] = (),
    domainname: str | None = None,
) -> str:
    """The hosts file: localhost, ``extra`` hosts (name, address), then the peers' lines
    (address, names), then the container's own addresses under its hostname (127.0.1.1 when it
    has none). A name listed for several addresses resolves to all of them (getaddrinfo)."""
    lines = [LOCALHOST]
    for name, address in extra:
        lines.append(f"{address}\t{name}\n")
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for address, names in peers:
        key = (address, tuple(names))
        if names and key not in seen:
            seen.add(key)
            lines.append(f"{address}\t{' '.join(names)}\n")
    own_names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    for address in own or ("127.0.1.1",):
        lines.append(f"{address}\t{own_names}\n")
    return "".join(lines)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def render_resolv(
    host_text: str,
    servers: Sequence[str] = (),
    search: Sequence[str] = (),
    options: Sequence[str] = (),
) -> str:
    """resolv.conf from the host's (``host_text``): its loopback name servers dropped (they
    would be the container's own loopback), Docker's fallback when none is left; ``servers``,
    ``search`` and ``options`` replace the host's own lines of that kind when given."""
    host_servers: list[str] = []
    host_search: list[str] = []
    host_options: list[str] = []
    for line in host_text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1 and not _is_loopback(fields[1]):
            host_servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            host_search = fields[1:]
        elif fields[0] == "options":
            host_options += fields[1:]
    chosen = list(servers) or host_servers or list(FALLBACK_NAMESERVERS)
    lines = []
    if search or host_search:
        lines.append("search " + " ".join(search or host_search))
    lines += [f"nameserver {server}" for server in chosen]
    if options or host_options:
        lines.append("options " + " ".join(options or host_options))
    return "\n".join(lines) + "\n"


def host_resolv_conf(path: str = "/etc/resolv.conf") -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write_in_place(path: str | os.PathLike[str], text: str, create: bool = True) -> None:
    """Replace the content of ``path`` keeping its inode (created if missing, unless not
    ``create``: FileNotFoundError then)."""
    data = text.encode()
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o644)
    try:
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
