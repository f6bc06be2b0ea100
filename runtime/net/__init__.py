"""Container networking on the host's kernel: bridges, veth pairs, addresses and routes
(``_netlink``, the only importer of pyroute2), address management (``ipam``), the hosts and
resolv.conf files (``hosts``), nftables rules for published ports, outbound NAT and isolation
(``nft``), published-port bindings (``ports``) and legacy links' variables (``links``).

Everything it makes on the host is recognisable: interfaces are named ``orc*`` (bridges
``orc-<network id>``, host ends of veth pairs ``orcv<hex>``) and every nftables rule lives in
the table ``inet orchestrator``. Changes to what every state root shares (the choice of a subnet,
the bridges, the nftables table) are made under one host-wide lock, ``HOST_LOCK``.
"""

from __future__ import annotations

HOST_LOCK = "/run/orchestrator/network.lock"
BRIDGE_PREFIX = "orc-"
VETH_PREFIX = "orcv"
