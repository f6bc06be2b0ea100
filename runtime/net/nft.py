"""nftables rules through libnftables (ctypes: no ``nft`` process per change), all in the table
``inet orchestrator``::

    chain prerouting / output   (nat)     fib daddr type local jump ports
    chain ports                           one DNAT rule per published port
    chain postrouting           (nat)     loopback sources to a bridge masqueraded (published
                                          ports on 127.0.0.1); a network's own traffic leaving
                                          it masqueraded (not for internal networks)
    chain forward               (filter)  within one bridge: accept; to or from an internal
                                          network: drop; DNATed (published) traffic: accept;
                                          between two of our bridges: drop (isolation)

Every rule but the table's fixed ones carries a comment ``orc <root tag> net|ctr <id>``:
the state root's tag (``root_tag``) and the network or container it belongs to, so that its
owner removes exactly its own rules, and a test can see what it left. Callers hold
runtime.net.HOST_LOCK while they change the table.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runtime.errors import Error

TABLE = "orchestrator"
FAMILY = "inet"
_OUTPUT_HANDLE = 1 << 3
_OUTPUT_JSON = 1 << 4

_SKELETON = f"""
add table {FAMILY} {TABLE}
add chain {FAMILY} {TABLE} ports
add chain {FAMILY} {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {FAMILY} {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain {FAMILY} {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain {FAMILY} {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
"""

# The fixed rules: (chain, rule, comment). Added once each, in this order.
_FIXED = (
    ("prerouting", "fib daddr type local jump ports", "orc fixed local-prerouting"),
    ("output", "fib daddr type local jump ports", "orc fixed local-output"),
    ("postrouting", 'ip saddr 127.0.0.0/8 oifname "orc-*" masquerade', "orc fixed loopback"),
    ("forward", "ct status dnat accept", "orc fixed published"),
    ("forward", 'iifname "orc-*" oifname "orc-*" drop', "orc fixed isolation"),
)


def root_tag(root: str) -> str:
    """A short tag of a state root, carried in its rules' comments."""
    return hashlib.sha256(root.encode()).hexdigest()[:8]


def network_comment(tag: str, network_id: str) -> str:
    return f"orc {tag} net {network_id[:12]}"


def container_comment(tag: str, container_id: str) -> str:
    return f"orc {tag} ctr {container_id[:12]}"


class Nft:
    """One libnftables context."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        except OSError:
            raise Error("nftables is not installed (libnftables.so.1): install nftables") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).restype = ctypes.c_char_p
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)

    def close(self) -> None:
        if self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, commands: str, listing: bool = False) -> str:
        """Run ``commands`` (nft's syntax, one transaction); JSON output with handles when
        ``listing``."""
        lib = self._lib
        lib.nft_ctx_output_set_flags(self._ctx, (_OUTPUT_JSON | _OUTPUT_HANDLE) if listing else 0)
        code = lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
        output = (lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
        error = (lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if code != 0:
            first = next((line for line in error.splitlines() if line.strip()), "failed")
            raise Error(f"nftables: {first}")
        return output

    # the table -------------------------------------------------------------------------------

    def rules(self) -> list[dict[str, Any]]:
        """Every rule of our table (chain, handle, comment, expr), [] if there is no table."""
        try:
            out = self.run(f"list table {FAMILY} {TABLE}", listing=True)
        except Error as exc:
            if "No such file" in str(exc):
                return []
            raise
        items = json.loads(out or "{}").get("nftables", [])
        return [item["rule"] for item in items if "rule" in item]

    def ensure_table(self) -> None:
        """The table, its chains and its fixed rules (what is missing of them)."""
        present = {rule.get("comment") for rule in self.rules()}
        missing = [
            f'add rule {FAMILY} {TABLE} {chain} {rule} comment "{comment}"'
            for chain, rule, comment in _FIXED
            if comment not in present
        ]
        if missing:
            self.run(_SKELETON + "\n".join(missing) + "\n")

    def delete_tagged(self, comment: str) -> int:
        """Delete every rule whose comment is ``comment``; how many there were."""
        doomed = [r for r in self.rules() if r.get("comment") == comment]
        if doomed:
            self.run(
                "".join(
                    f"delete rule {FAMILY} {TABLE} {r['chain']} handle {int(r['handle'])}\n"
                    for r in doomed
                )
            )
        return len(doomed)

    def tagged(self, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.rules() if str(r.get("comment", "")).startswith(prefix)]


def network_rules(comment: str, bridge: str, subnet: str, internal: bool) -> str:
    """The commands that add a network's rules (bridge name and subnet checked here)."""
    _check_name(bridge)
    net = ipaddress.IPv4Network(subnet)
    tagged = f'comment "{comment}"'
    lines = []
    if internal:
        lines += [
            f'insert rule {FAMILY} {TABLE} forward oifname "{bridge}" drop {tagged}',
            f'insert rule {FAMILY} {TABLE} forward iifname "{bridge}" drop {tagged}',
        ]
    else:
        lines.append(
            f"add rule {FAMILY} {TABLE} postrouting ip saddr {net} "
            f'oifname != "{bridge}" masquerade {tagged}'
        )
    lines.append(
        f'insert rule {FAMILY} {TABLE} forward iifname "{bridge}" oifname "{bridge}" accept {tagged}'
    )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Binding:
    """One published port: host address ('' for all of the host's), host port, protocol,
    and where it leads (the container's address and port)."""

    host_ip: str
    host_port: int
    protocol: str
    address: str
    port: int

    def to_record(self) -> dict[str, Any]:
        return {
            "host_ip": self.host_ip,
            "host_port": self.host_port,
            "protocol": self.protocol,
            "address": self.address,
            "port": self.port,
        }

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> Binding:
        return cls(
            str(raw["host_ip"]),
            int(raw["host_port"]),
            str(raw["protocol"]),
            str(raw["address"]),
            int(raw["port"]),
        )


def port_rules(comment: str, bindings: Iterable[Binding]) -> str:
    lines = []
    for b in bindings:
        if b.protocol not in ("tcp", "udp", "sctp"):
            raise Error(f"protocol {b.protocol!r} cannot be published")
        address = ipaddress.IPv4Address(b.address)
        match = "meta nfproto ipv4"
        if b.host_ip:
            match = f"ip daddr {ipaddress.IPv4Address(b.host_ip)}"
        lines.append(
            f"add rule {FAMILY} {TABLE} ports {match} {b.protocol} dport {int(b.host_port)} "
            f'dnat ip to {address}:{int(b.port)} comment "{comment}"'
        )
    return "\n".join(lines) + "\n" if lines else ""


def _check_name(name: str) -> None:
    if not name.replace("-", "").isalnum() or len(name) > 15:
        raise Error(f"bad interface name {name!r}")
