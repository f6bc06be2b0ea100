"""/etc/hosts, /etc/hostname and /etc/resolv.conf of a ``--network host`` container: copies of
the host's, as Docker makes them (the container shares the host's network, so the host's names
and name servers, loopback ones included, are right for it), with its ``--add-host`` lines.
Copies rather than the host's own files: the container cannot change the host's."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from runtime.net.hosts import LOCALHOST


def write(directory: Path, description: Any) -> None:
    hosts = _read("/etc/hosts") or LOCALHOST
    if not hosts.endswith("\n"):
        hosts += "\n"
    for name, address in description.extra_hosts:
        hosts += f"{address}\t{name}\n"
    (directory / "hosts").write_text(hosts)
    (directory / "hostname").write_text(socket.gethostname() + "\n")
    resolv = _read("/etc/resolv.conf")
    if description.dns or description.dns_search or description.dns_options:
        from runtime.net.hosts import render_resolv

        resolv = render_resolv(
            resolv, description.dns, description.dns_search, description.dns_options
        )
    (directory / "resolv.conf").write_text(resolv)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""
