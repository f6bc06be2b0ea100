"""Networks: bridges, leases, names and published ports, for ``orchestrator network ...``,
``orchestrator run`` and the supervisor (``Networks`` is the API all of them call).

A network is a Linux bridge ``orc-<id>`` with the gateway's address, nftables rules for its
outbound NAT and its isolation, and a record (orchestrator.netstore). A container on networks
gets, when it is created, a lease on each (its address there, kept as long as it exists), and
its hosts file; when it starts (its init made, not yet running its program) one veth pair per
network, the container's end ``eth0``, ``eth1``... with its address, the default route via the
first network's gateway (none on an internal network), and its published ports' DNAT rules.

Names are served by hosts files, kept current in place: every change of a network's members
rewrites the hosts file of each container on it, which sees the change at once (Compose's
recreated peer resolves to its new address without a restart).

Every command that touches the records first collects what dead containers and interrupted
commands left (``_collect``): leases of containers that are gone, their veths and rules, and
networks whose creation or removal was cut short.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import signal
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConflictError, NotFoundError, UserError
from orchestrator.netconfig import Endpoint, is_bridged
from orchestrator.netstore import Store, creator, creator_gone
from orchestrator.paths import containers_dir

if TYPE_CHECKING:
    from orchestrator.containers import Container, Containers
    from orchestrator.description import ContainerDescription
    from runtime.image.model import Image
    from runtime.net.nft import Binding, Nft

DEFAULT_NETWORK = "bridge"  # made on first use, as Docker's default bridge network
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
_HOST_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,252}")
_CRASH_AT = "ORCHESTRATOR_NETWORK_CRASH_AT"


@dataclass(frozen=True)
class NetworkSetup:
    """What a container's bundle needs of its networks (orchestrator.bundle.build_spec)."""

    hosts: str | None = None  # its hosts file (None: the default one)
    env: tuple[str, ...] = ()  # its links' variables, under the user's own
    files_from: str | None = None  # container:X: the directory of X's hosts files, shared
    hostname: str | None = None  # container:X: X's hostname


def crash_point(step: str) -> None:
    """Die here, as a crash would, when the tests ask for it (``$ORCHESTRATOR_NETWORK_CRASH_AT``
    names the step): proves that the next command cleans up after any step."""
    if os.environ.get(_CRASH_AT) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def endpoints_of(description: ContainerDescription) -> tuple[Endpoint, ...]:
    if not is_bridged(description.network):
        return ()
    return description.networks or (Endpoint(description.network),)


def _user_error(exc: Exception, prefix: str = "") -> UserError:
    return UserError(f"{prefix}{exc}")


class Networks:
    """The networks of one state root."""

    def __init__(self, root: Path, containers: Containers | None = None) -> None:
        from runtime.net.nft import root_tag

        self.root = root
        self.store = Store(root)
        self.tag = root_tag(str(root))
        self._containers = containers

    @property
    def containers(self) -> Containers:
        if self._containers is None:
            from orchestrator.containers import Containers

            self._containers = Containers(self.root)
        return self._containers

    # -- networks --------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new bridge network; ConflictError if the name is taken."""
        _check_network_name(name)
        with self.store.edit() as data:
            self._collect(data)
            if _find(data, name) is not None:
                raise ConflictError(f"network {name} already exists")
            return self._create_locked(data, name, subnet, gateway, internal, labels or {})

    def ensure(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The network ``name``, made if missing (a stack's networks), its bridge and rules
        remade if something removed them."""
        _check_network_name(name)
        with self.store.edit() as data:
            self._collect(data)
            found = _find(data, name)
            if found is None:
                return self._create_locked(data, name, subnet, gateway, internal, labels or {})
            self._ensure_kernel_side(found)
            return found

    def all(self) -> list[dict[str, Any]]:
        with self.store.edit() as data:
            self._collect(data)
        return [n for n in data["networks"].values() if n.get("state") == "ready"]

    def get(self, name_or_id: str) -> dict[str, Any]:
        found = _find(self.store.read(), name_or_id)
        if found is None:
            raise NotFoundError(f"no such network: {name_or_id}")
        return found

    def inspect(self, name_or_id: str) -> dict[str, Any]:
        data = self.store.read()
        network = _find(data, name_or_id)
        if network is None:
            raise NotFoundError(f"no such network: {name_or_id}")
        members = {}
        for cid, endpoints in data["endpoints"].items():
            for ep in endpoints:
                if ep["network"] == network["id"]:
                    members[cid] = {
                        "name": data["hosts"].get(cid, {}).get("name", ""),
                        "ip": ep["ip"],
                        "mac": ep["mac"],
                        "aliases": ep["aliases"],
                        "interface": ep.get("ifname"),
                    }
        return {**network, "containers": members}

    def remove(self, name_or_id: str) -> None:
        """Remove a network none of whose containers exists any more."""
        with self.store.edit() as data:
            self._collect(data)
            network = _find(data, name_or_id)
            if network is None:
                raise NotFoundError(f"no such network: {name_or_id}")
            users = _members(data, network["id"])
            if users:
                names = ", ".join(sorted(data["hosts"].get(c, {}).get("name", c) for c in users))
                raise ConflictError(f"network {network['name']} is in use by: {names}")
            self._destroy_locked(data, network)

    def prune(self, labels: dict[str, str] | None = None) -> list[str]:
        """Remove every network without containers (with all of ``labels``: a stack's, when
        its last container is gone); their names."""
        removed = []
        wanted = (labels or {}).items()
        with self.store.edit() as data:
            self._collect(data)
            for network in list(data["networks"].values()):
                if wanted and not wanted <= network.get("labels", {}).items():
                    continue
                if not _members(data, network["id"]):
                    self._destroy_locked(data, network)
                    removed.append(network["name"])
        return removed

    def _create_locked(
        self,
        data: dict[str, Any],
        name: str,
        subnet_text: str | None,
        gateway_text: str | None,
        internal: bool,
        labels: dict[str, str],
    ) -> dict[str, Any]:
        from runtime.net import _netlink, ipam

        ours = [
            ipaddress.IPv4Network(n["subnet"]) for n in data["networks"].values() if n.get("subnet")
        ]
        network_id = secrets.token_hex(32)
        record: dict[str, Any] = {
            "id": network_id,
            "name": name,
            "driver": "bridge",
            "bridge": "orc-" + network_id[:11],
            "subnet": None,
            "gateway": None,
            "internal": internal,
            "labels": dict(labels),
            "created": _now(),
            "state": "creating",
            "creator": creator(),
        }
        data["networks"][network_id] = record
        self.store.save(data)  # named before made: a crash from here on is collected
        crash_point("create:recorded")
        try:
            with _host_lock():
                host = _netlink.host_networks()
                try:
                    if subnet_text is not None:
                        subnet = ipam.parse_subnet(subnet_text)
                        ipam.check_subnet(subnet, ours, host)
                    else:
                        subnet = ipam.choose_subnet(_pools(), [*ours, *host])
                    gateway = ipam.gateway_for(subnet, gateway_text)
                except ipam.IpamError as exc:
                    raise _user_error(exc, f"network {name}: ") from None
                record.update(subnet=str(subnet), gateway=gateway)
                self.store.save(data)
                _netlink.ensure_bridge(record["bridge"], gateway, subnet.prefixlen)
                crash_point("create:bridge")
                self._network_rules(record)
                if not internal:
                    _netlink.enable_forwarding()
        except BaseException:
            self._destroy_locked(data, record)
            raise
        record["state"] = "ready"
        del record["creator"]
        return dict(record)

    def _network_rules(self, network: dict[str, Any]) -> None:
        from runtime.net import nft

        comment = nft.network_comment(self.tag, network["id"])
        with nft.Nft() as tables:
            tables.ensure_table()
            tables.delete_tagged(comment)
            tables.run(
                nft.network_rules(
                    comment, network["bridge"], network["subnet"], network["internal"]
                )
            )

    def _ensure_kernel_side(self, network: dict[str, Any]) -> None:
        """The bridge and rules of a recorded network (made again after a reboot, say)."""
        from runtime.net import _netlink

        with _host_lock():
            if _netlink.link_index(network["bridge"]) is None:
                subnet = ipaddress.IPv4Network(network["subnet"])
                _netlink.ensure_bridge(network["bridge"], network["gateway"], subnet.prefixlen)
                self._network_rules(network)

    def _destroy_locked(self, data: dict[str, Any], network: dict[str, Any]) -> None:
        """Remove a network's rules, bridge and record, marked first so that a crash half way
        is finished by the next command."""
        from runtime.net import _netlink, nft

        network["state"] = "removing"
        network["creator"] = creator()
        self.store.save(data)
        with _host_lock():
            with nft.Nft() as tables:
                tables.delete_tagged(nft.network_comment(self.tag, network["id"]))
            crash_point("remove:rules")
            _netlink.delete_link(network["bridge"])
        data["networks"].pop(network["id"], None)
        data["last"].pop(network["id"], None)
        self.store.save(data)

    # -- containers ------------------------------------------------------------------------------

    def reserve(
        self,
        container_id: str,
        name: str,
        description: ContainerDescription,
        image: Image | None,
        refresh_peers: bool = True,
    ) -> NetworkSetup:
        """At creation (the container's directory exists): its leases, its hosts file's
        content and its links' variables; the hosts files of its peers name it from now on
        (unless not ``refresh_peers``: the caller, creating many, calls ``refresh_hosts`` once
        they are all made)."""
        if description.network.startswith(("container:", "service:")):
            target = self._join_target(description)
            return NetworkSetup(
                files_from=str(target.directory),
                hostname=(target.options.hostname or target.id[:12]),
            )
        endpoints = endpoints_of(description)
        if not endpoints:
            if description.links:
                raise UserError("--link needs a network: give --network")
            return NetworkSetup()
        from runtime.net import links

        _check_hostnames("--hostname", [description.hostname] if description.hostname else [])
        _check_hostnames(
            "--domainname", [description.domainname or ""] if description.domainname else []
        )
        for endpoint in endpoints:
            _check_hostnames("--network-alias", endpoint.aliases)
        exposed = _exposed(description, image)
        with self.store.edit() as data:
            self._collect(data)
            leases: list[dict[str, Any]] = []
            for endpoint in endpoints:
                if any(lease["network"] == endpoint.network for lease in leases):
                    raise UserError(f"--network {endpoint.network} is given twice")
                network = self._network_for(data, endpoint.network)
                leases.append(self._lease(data, network, endpoint, container_id, description))
            for index, lease in enumerate(leases):
                # (named now, made at the first start: its records need no rewrite then)
                lease["ifname"], lease["veth"] = f"eth{index}", _veth_name()
            data["endpoints"][container_id] = leases
            data["hosts"][container_id] = {
                "name": name,
                "hostname": description.hostname or container_id[:12],
                "domainname": description.domainname,
                "project": description.identity.project,
                "service": description.identity.service,
                "exposed": exposed,
                "links": [],
                "extra_hosts": [list(pair) for pair in description.extra_hosts],
            }
            env: list[str] = []
            for link in description.links:
                target_id, address = self._link_target(data, container_id, link.target, description)
                data["hosts"][container_id]["links"].append([target_id, link.alias])
                target_meta = data["hosts"][target_id]
                env += links.link_env(
                    link.alias,
                    name,
                    address,
                    target_meta.get("exposed", []),
                    _container_env(self.containers_dir / target_id),
                )
            if refresh_peers:
                self._refresh_hosts(data, {lease["network"] for lease in leases}, skip=container_id)
            text = self._render_hosts(data, container_id)
        return NetworkSetup(hosts=text, env=tuple(env))

    @property
    def containers_dir(self) -> Path:
        return containers_dir(self.root)

    def _network_for(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        network = _find(data, name)
        if network is None and name == DEFAULT_NETWORK:
            network = self._create_locked(data, name, None, None, False, {})
        if network is None:
            raise NotFoundError(f"--network {name}: no such network")
        return network

    def _lease(
        self,
        data: dict[str, Any],
        network: dict[str, Any],
        endpoint: Endpoint,
        container_id: str,
        description: ContainerDescription,
    ) -> dict[str, Any]:
        from runtime.net import ipam

        subnet = ipaddress.IPv4Network(network["subnet"])
        reserved = [network["gateway"], *(ep["ip"] for ep in _endpoints_on(data, network["id"]))]
        try:
            if endpoint.ip:
                address = ipam.check_address(subnet, endpoint.ip, reserved)
            else:
                address = ipam.next_address(subnet, reserved, data["last"].get(network["id"]))
                data["last"][network["id"]] = address
        except ipam.IpamError as exc:
            what = f"--ip {endpoint.ip}: " if endpoint.ip else ""
            raise UserError(f"{what}network {network['name']}: {exc}") from None
        aliases = list(dict.fromkeys(endpoint.aliases))
        service = description.identity.service
        if service and service not in aliases and not description.identity.oneoff:
            # a stack's service name resolves to all its replicas (a one-off answers to it
            # only with --use-aliases: orchestrator.oneoff puts it among its aliases then)
            aliases.append(service)
        return {
            "network": network["id"],
            "ip": address,
            "mac": ipam.mac_for(address),
            "aliases": aliases,
            "ifname": None,
            "veth": None,
        }

    def attach(self, container_id: str, description: ContainerDescription) -> None:
        """Wire the created container (its init waits to run the program): a veth pair per
        network, its address and routes, then its published ports."""
        with self.store.edit() as data:
            self._collect(data)
            endpoints = data["endpoints"].get(container_id)
            if not endpoints:
                return
            # The veths named at creation serve the first start (none of them exists yet);
            # after an earlier run, what it left goes and new names are recorded first.
            if container_id in data["ports"] or not all(
                ep.get("veth") and not _link_exists(ep["veth"]) for ep in endpoints
            ):
                self._unwire(data, container_id)
                for index, endpoint in enumerate(endpoints):
                    endpoint["ifname"] = f"eth{index}"
                    endpoint["veth"] = _veth_name()
                self.store.save(data)  # the veths are named before they exist
            # What the wiring needs, copied: the kernel's part runs without the store's lock,
            # so that containers starting side by side are wired side by side. (The veths
            # are recorded already; one whose container dies meanwhile goes with its netns.)
            wiring = [(dict(ep), dict(data["networks"][ep["network"]])) for ep in endpoints]
            publishes = bool(_requests(description, data["hosts"][container_id].get("exposed", [])))
        with self._netns(container_id) as (netns_fd, sock):
            gateway_done = False
            for endpoint, network in wiring:
                gateway_done |= self._wire(network, endpoint, netns_fd, sock, not gateway_done)
        crash_point("attach:wired")
        if publishes:
            with self.store.edit() as data:
                if container_id in data["endpoints"]:  # (not removed meanwhile)
                    self._publish(data, container_id, description)
        crash_point("attach:published")

    def _wire(
        self,
        network: dict[str, Any],
        endpoint: dict[str, Any],
        netns_fd: int,
        sock: socket.socket,
        want_gateway: bool,
    ) -> bool:
        """One veth pair for ``endpoint``; whether it got the default route."""
        from runtime import errors
        from runtime.net import _netlink

        try:
            _netlink.add_veth(
                endpoint["veth"], network["bridge"], netns_fd, endpoint["ifname"], endpoint["mac"]
            )
        except errors.Error:
            if _netlink.link_index(network["bridge"]) is not None:
                raise
            self._ensure_kernel_side(network)  # the bridge was gone: made again, then retry
            _netlink.add_veth(
                endpoint["veth"], network["bridge"], netns_fd, endpoint["ifname"], endpoint["mac"]
            )
        crash_point("attach:veth")
        gateway = network["gateway"] if want_gateway and not network["internal"] else None
        prefixlen = ipaddress.IPv4Network(network["subnet"]).prefixlen
        _netlink.configure_inside(sock, endpoint["ifname"], endpoint["ip"], prefixlen, gateway)
        return gateway is not None

    @contextmanager
    def _netns(self, container_id: str) -> Iterator[tuple[int, socket.socket]]:
        """The container's network namespace (a descriptor, checked to be its init's) and a
        netlink socket made inside it."""
        from runtime import state as rstate
        from runtime.net import _netlink

        current = self.containers.runtime.state(container_id)
        try:
            fd = os.open(f"/proc/{current.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UserError(f"container {container_id[:12]} ended while being wired") from None
        try:
            if rstate.process_start_time(current.pid) != current.record.get("pid_start"):
                raise UserError(f"container {container_id[:12]} ended while being wired")
            sock = _netlink.route_socket_in(fd)
            try:
                yield fd, sock
            finally:
                sock.close()
        finally:
            os.close(fd)

    def _publish(
        self, data: dict[str, Any], container_id: str, description: ContainerDescription
    ) -> None:
        from runtime.net import nft, ports

        requests = _requests(description, data["hosts"][container_id].get("exposed", []))
        if not requests:
            return
        endpoint = self._publish_endpoint(data, container_id)
        with _host_lock(), nft.Nft() as tables:
            in_use = self._ports_in_use(data, tables, container_id)
            try:
                bindings = ports.resolve(requests, endpoint["ip"], in_use)
            except ports.PortError as exc:
                raise UserError(f"-p {exc}") from None
            data["ports"][container_id] = [b.to_record() for b in bindings]
            self.store.save(data)
            tables.ensure_table()
            tables.run(nft.port_rules(nft.container_comment(self.tag, container_id), bindings))

    def _publish_endpoint(self, data: dict[str, Any], container_id: str) -> dict[str, Any]:
        for endpoint in data["endpoints"][container_id]:
            if not data["networks"][endpoint["network"]]["internal"]:
                return dict(endpoint)
        raise UserError("-p: ports cannot be published from internal networks only")

    def _ports_in_use(
        self, data: dict[str, Any], tables: Nft, container_id: str
    ) -> list[tuple[str, str, int]]:
        """Host ports our rules publish (every state root's), once the rules of this root's
        containers that no longer run are gone."""
        from runtime.net import nft

        for other in list(data["ports"]):
            if other != container_id and not self._running(other):
                tables.delete_tagged(nft.container_comment(self.tag, other))
                del data["ports"][other]
        return _published_keys(tables.rules())

    def _running(self, container_id: str) -> bool:
        from runtime.errors import NotFound

        try:
            status = self.containers.runtime.state(container_id).status
        except NotFound:
            return False
        return bool(status in ("running", "paused", "created"))

    def release(self, container_id: str) -> None:
        """A removed container's veths, rules and leases; its peers forget it."""
        with self.store.edit() as data:
            affected = self._forget(data, container_id)
            self._collect(data)
            self._refresh_hosts(data, affected)

    def refresh_hosts(self, network_names: Iterable[str]) -> None:
        """Rewrite the hosts file of every container on these networks (after creations that
        left it to the caller: ``reserve(refresh_peers=False)``)."""
        with self.store.edit() as data:
            ids = {n["id"] for name in network_names if (n := _find(data, name)) is not None}
            self._refresh_hosts(data, ids)

    def forget_removed(self, veths_later: list[str] | None = None) -> None:
        """``release`` for every container removed without it (a stack's down removes them all,
        then releases them in one edit: one rewrite of the records and of the peers' hosts
        files, not one per container). With ``veths_later``, the host ends of veths still
        there are named in it rather than deleted: their network namespaces are going (the
        kernel removes them with it), and a deletion of our own waits some 30 ms for the
        kernel; the caller deletes what is left of them later (``delete_veths``)."""
        with self.store.edit() as data:
            self._collect(data, veths_later)

    def delete_veths(self, names: Sequence[str]) -> None:
        """Delete those of the veths ``names`` that are still there (``forget_removed``)."""
        from runtime.net import _netlink

        stale = [name for name in names if _link_exists(name)]
        if stale:
            with _host_lock():
                for name in stale:
                    if _link_exists(name):
                        _netlink.delete_link(name)

    def connect(
        self,
        container: Container,
        network_name: str,
        aliases: Sequence[str] = (),
        ip: str | None = None,
    ) -> None:
        """Join ``network_name``: a lease now, wired at once if the container runs."""
        description = container.options
        if not is_bridged(description.network):
            raise ConflictError(
                f"container {container.name} uses network mode {description.network}: "
                "it cannot join networks"
            )
        _check_hostnames("--alias", aliases)
        with self.store.edit() as data:
            self._collect(data)
            network = self._network_for(data, network_name)
            endpoints = data["endpoints"].setdefault(container.id, [])
            if any(ep["network"] == network["id"] for ep in endpoints):
                raise ConflictError(f"container {container.name} is already on {network['name']}")
            lease = self._lease(
                data, network, Endpoint(network_name, tuple(aliases), ip), container.id, description
            )
            endpoints.append(lease)
            self.store.save(data)
            if self._wired(data, container.id):
                used = {ep["ifname"] for ep in endpoints if ep.get("ifname")}
                lease["ifname"] = next(f"eth{n}" for n in range(64) if f"eth{n}" not in used)
                lease["veth"] = _veth_name()
                self.store.save(data)
                with self._netns(container.id) as (netns_fd, sock):
                    self._wire(network, lease, netns_fd, sock, want_gateway=False)
            self._refresh_hosts(data, {network["id"]})

    def disconnect(self, container: Container, network_name: str) -> None:
        from runtime.net import _netlink, nft
        from runtime.net.nft import Binding

        with self.store.edit() as data:
            self._collect(data)
            network = _find(data, network_name)
            if network is None:
                raise NotFoundError(f"no such network: {network_name}")
            endpoints = data["endpoints"].get(container.id, [])
            endpoint = next((ep for ep in endpoints if ep["network"] == network["id"]), None)
            if endpoint is None:
                raise ConflictError(f"container {container.name} is not on {network['name']}")
            if endpoint.get("veth"):
                with _host_lock():
                    _netlink.delete_link(endpoint["veth"])
            endpoints.remove(endpoint)
            bound = [Binding.from_record(b) for b in data["ports"].get(container.id, [])]
            if any(b.address == endpoint["ip"] for b in bound):
                kept = [b for b in bound if b.address != endpoint["ip"]]
                comment = nft.container_comment(self.tag, container.id)
                with _host_lock(), nft.Nft() as tables:
                    tables.delete_tagged(comment)
                    if kept:
                        tables.run(nft.port_rules(comment, kept))
                data["ports"][container.id] = [b.to_record() for b in kept]
            self._refresh_hosts(data, {network["id"]})

    def bindings(self, container_id: str) -> list[Binding]:
        """The container's published ports while it runs."""
        from runtime.net.nft import Binding

        if not self._running(container_id):
            return []
        raw = self.store.read()["ports"].get(container_id, [])
        return [Binding.from_record(b) for b in raw]

    def addresses(self, container_id: str) -> dict[str, str]:
        """Network name -> the container's address there."""
        data = self.store.read()
        return {
            data["networks"][ep["network"]]["name"]: ep["ip"]
            for ep in data["endpoints"].get(container_id, [])
            if ep["network"] in data["networks"]
        }

    def join_path(self, description: ContainerDescription) -> str:
        """container:X / service:X: the network namespace to join, X's while it runs."""
        target = self._join_target(description)
        runtime = self.containers.runtime
        from runtime.errors import NotFound

        try:
            current = runtime.state(target.id)
        except NotFound:
            current = None
        if current is None or current.status not in ("running", "paused"):
            raise ConflictError(
                f"--network {description.network}: container {target.name} is not running"
            )
        return f"/proc/{current.pid}/ns/net"

    # -- helpers ---------------------------------------------------------------------------------

    def _join_target(self, description: ContainerDescription) -> Container:
        kind, _, name = description.network.partition(":")
        if kind == "service":
            target = self._service_container(description.identity.project, name)
        else:
            try:
                target = self.containers.get(name)
            except NotFoundError:
                target = None
        if target is None:
            raise NotFoundError(f"--network {description.network}: no such {kind}")
        return target

    def _service_container(self, project: str, service: str) -> Container | None:
        """The lowest replica of ``service`` in ``project`` (never a one-off container)."""
        candidates = [
            c
            for c in self.containers.all()
            if c.options.identity.project == project
            and c.options.identity.service == service
            and not c.options.identity.oneoff
        ]
        return min(candidates, key=lambda c: c.options.identity.replica, default=None)

    def _link_target(
        self,
        data: dict[str, Any],
        container_id: str,
        target: str,
        description: ContainerDescription,
    ) -> tuple[str, str]:
        """The linked container's id and the address we reach it at."""
        found: Container | None
        try:
            found = self.containers.get(target)
        except NotFoundError:
            found = None
        if found is None and description.identity.project:
            found = self._service_container(description.identity.project, target)
        if found is None:
            raise NotFoundError(f"--link {target}: no such container")
        theirs = data["endpoints"].get(found.id) or []
        if not theirs:
            raise UserError(f"--link {target}: container {found.name} has no network address")
        ours = {ep["network"] for ep in data["endpoints"].get(container_id, [])}
        shared = [ep for ep in theirs if ep["network"] in ours]
        return found.id, str((shared or theirs)[0]["ip"])

    def _wired(self, data: dict[str, Any], container_id: str) -> bool:
        """Whether the container runs with its veths made (connect must wire it now)."""
        endpoints = data["endpoints"].get(container_id, [])
        return self._running(container_id) and any(ep.get("veth") for ep in endpoints)

    def _unwire(
        self, data: dict[str, Any], container_id: str, veths_later: list[str] | None = None
    ) -> None:
        """What an earlier run of the container left: its veths (if its network namespace
        still holds them; with ``veths_later``, named there instead: see ``forget_removed``)
        and its published ports' rules."""
        from runtime.net import _netlink, nft

        stale = [
            ep["veth"]
            for ep in data["endpoints"].get(container_id, [])
            if ep.get("veth") and _link_exists(ep["veth"])  # (gone with its namespace, mostly)
        ]
        if veths_later is not None:
            veths_later += stale
            stale = []
        if stale or container_id in data["ports"]:
            with _host_lock():
                for veth in stale:
                    _netlink.delete_link(veth)
                # Rules exist only where ports were recorded (they are saved before the rules
                # are made): a container that publishes none costs no nftables round.
                if container_id in data["ports"]:
                    with nft.Nft() as tables:
                        tables.delete_tagged(nft.container_comment(self.tag, container_id))
        for endpoint in data["endpoints"].get(container_id, []):
            endpoint["veth"] = None
        data["ports"].pop(container_id, None)

    def _forget(
        self, data: dict[str, Any], container_id: str, veths_later: list[str] | None = None
    ) -> set[str]:
        """Drop a container's veths, rules and leases; the networks it was on."""
        self._unwire(data, container_id, veths_later)
        endpoints = data["endpoints"].pop(container_id, [])
        data["hosts"].pop(container_id, None)
        return {ep["network"] for ep in endpoints}

    def _collect(self, data: dict[str, Any], veths_later: list[str] | None = None) -> None:
        """Finish what crashed commands left, forget containers that are gone (their veths
        named in ``veths_later``, if given, rather than deleted)."""
        affected: set[str] = set()
        known = set(data["endpoints"]) | set(data["hosts"]) | set(data["ports"])
        try:
            present = set(os.listdir(self.containers_dir))  # (one read, not a stat each)
        except FileNotFoundError:
            present = set()
        for container_id in known - present:
            affected |= self._forget(data, container_id, veths_later)
        for network in list(data["networks"].values()):
            if network.get("state") != "ready" and creator_gone(network):
                self._destroy_locked(data, network)
        self._refresh_hosts(data, affected & set(data["networks"]))

    def _refresh_hosts(
        self, data: dict[str, Any], network_ids: Iterable[str], skip: str | None = None
    ) -> None:
        """Rewrite, in place, the hosts file of every container on these networks."""
        from runtime.net.hosts import write_in_place

        wanted = set(network_ids)
        if not wanted:
            return
        peers = _peers_by_network(data)  # (once for all of them: a stack's up is N of these)
        directory = str(self.containers_dir)
        for container_id, endpoints in data["endpoints"].items():
            if container_id == skip or not any(ep["network"] in wanted for ep in endpoints):
                continue
            if container_id not in data["hosts"]:
                continue
            try:
                # (only the files there are: one missing is a creation not that far yet)
                write_in_place(
                    f"{directory}/{container_id}/hosts",
                    self._render_hosts(data, container_id, peers),
                    create=False,
                )
            except FileNotFoundError:
                continue  # its directory went meanwhile: a removal under way

    def _render_hosts(
        self,
        data: dict[str, Any],
        container_id: str,
        peers_by_network: dict[str, list[tuple[str, list[str]]]] | None = None,
    ) -> str:
        from runtime.net.hosts import render_hosts

        meta = data["hosts"][container_id]
        endpoints = data["endpoints"].get(container_id, [])
        mine = [ep["network"] for ep in endpoints]
        peers: list[tuple[str, list[str]]] = []
        if len(mine) == 1:
            index = peers_by_network if peers_by_network is not None else _peers_by_network(data)
            peers.extend(index.get(mine[0], ()))
        else:
            for other, theirs in data["endpoints"].items():
                name = data["hosts"].get(other, {}).get("name")
                for ep in theirs:
                    if ep["network"] in mine and name:
                        peers.append((ep["ip"], [name, *ep["aliases"]]))
        for target_id, alias in meta.get("links", []):
            target = data["hosts"].get(target_id)
            theirs = data["endpoints"].get(target_id, [])
            if target and theirs:
                shared = [ep for ep in theirs if ep["network"] in mine] or theirs
                peers.append((shared[0]["ip"], [alias, target["name"]]))
        gateway = next(
            (
                data["networks"][ep["network"]]["gateway"]
                for ep in endpoints
                if ep["network"] in data["networks"]
            ),
            None,
        )
        extra = [
            (name, gateway if address == "host-gateway" and gateway else address)
            for name, address in meta.get("extra_hosts", [])
        ]
        return render_hosts(
            meta["hostname"], [ep["ip"] for ep in endpoints], peers, extra, meta.get("domainname")
        )


def _veth_name() -> str:
    return "orcv" + secrets.token_hex(6)[:11]


def _link_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)  # (an ioctl: no netlink round trip)
    except OSError:
        return False
    return True


def _peers_by_network(data: dict[str, Any]) -> dict[str, list[tuple[str, list[str]]]]:
    """Network id -> the (address, names) of the containers on it, in the records' order."""
    peers: dict[str, list[tuple[str, list[str]]]] = {}
    for other, theirs in data["endpoints"].items():
        name = data["hosts"].get(other, {}).get("name")
        if not name:
            continue
        for ep in theirs:
            peers.setdefault(ep["network"], []).append((ep["ip"], [name, *ep["aliases"]]))
    return peers


def _find(data: dict[str, Any], name_or_id: str) -> dict[str, Any] | None:
    networks: list[dict[str, Any]] = [
        n for n in data["networks"].values() if n.get("state") == "ready"
    ]
    for network in networks:
        if name_or_id in (network["name"], network["id"]):
            return network
    matches = [n for n in networks if len(name_or_id) >= 3 and n["id"].startswith(name_or_id)]
    return matches[0] if len(matches) == 1 else None


def _members(data: dict[str, Any], network_id: str) -> list[str]:
    return [
        cid
        for cid, endpoints in data["endpoints"].items()
        if any(ep["network"] == network_id for ep in endpoints)
    ]


def _endpoints_on(data: dict[str, Any], network_id: str) -> list[dict[str, Any]]:
    return [ep for eps in data["endpoints"].values() for ep in eps if ep["network"] == network_id]


def _check_network_name(name: str) -> None:
    if name in ("none", "host") or not _NAME.fullmatch(name):
        raise UserError(
            f"invalid network name {name!r}: letters, digits, '_', '.', '-' "
            "(not starting with a punctuation mark), at most 64, not none or host"
        )


def _check_hostnames(flag: str, names: Iterable[str]) -> None:
    """Names that go into hosts files: nothing that could end a name or add a line."""
    for name in names:
        if not _HOST_NAME.fullmatch(name):
            raise UserError(
                f"{flag} {name!r}: a host name is letters, digits, '.', '-' and '_' (at most 253)"
            )


def _pools() -> tuple[Any, ...]:
    from runtime.net import ipam

    text = os.environ.get("ORCHESTRATOR_ADDRESS_POOLS")
    if not text:
        return ipam.DEFAULT_POOLS
    try:
        return ipam.parse_pools(text)
    except ipam.IpamError as exc:
        raise UserError(f"ORCHESTRATOR_ADDRESS_POOLS: {exc}") from None


@contextmanager
def _host_lock() -> Iterator[None]:
    from runtime.filelock import exclusive
    from runtime.net import HOST_LOCK

    with exclusive(HOST_LOCK):
        yield


def _exposed(description: ContainerDescription, image: Image | None) -> list[str]:
    """Exposed ports as ``80/tcp``: the image's, ``--expose``'s and the published ones."""
    found = [*(image.exposed_ports if image else []), *description.expose]
    found += [f"{p.port}/{p.protocol}" for p in description.publish]
    normal = []
    for item in found:
        port, _, proto = item.partition("/")
        normal.append(f"{int(port)}/{(proto or 'tcp').lower()}")
    return sorted(set(normal), key=lambda s: (int(s.split("/")[0]), s))


def _requests(description: ContainerDescription, exposed: Sequence[str]) -> list[Any]:
    from runtime.net.ports import Request

    result = [
        Request(p.port, p.protocol, p.host_ip, p.host_start, p.host_end)
        for p in description.publish
    ]
    if description.publish_all:
        taken = {(p.port, p.protocol) for p in description.publish}
        for item in exposed:
            port, _, proto = item.partition("/")
            if (int(port), proto) not in taken:
                result.append(Request(int(port), proto))
    return result


def _published_keys(rules: Iterable[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(protocol, host ip or '', port) of every DNAT rule in the ports chain."""
    keys = []
    for rule in rules:
        if rule.get("chain") != "ports":
            continue
        proto, ip, port = "", "", 0
        for expr in rule.get("expr", []):
            match = expr.get("match") if isinstance(expr, dict) else None
            if not match:
                continue
            payload = match.get("left", {}).get("payload", {})
            if payload.get("field") == "dport":
                proto, port = str(payload.get("protocol")), int(match.get("right", 0))
            elif payload.get("protocol") == "ip" and payload.get("field") == "daddr":
                ip = str(match.get("right"))
        if proto and port:
            keys.append((proto, ip, port))
    return keys


def _container_env(directory: Path) -> list[str]:
    """A container's whole environment, from its bundle."""
    import json

    try:
        config = json.loads((directory / "bundle" / "config.json").read_text())
    except (OSError, ValueError):
        return []
    return [str(e) for e in config.get("process", {}).get("env", [])]


def _now() -> str:
    from runtime.logs import timestamp

    return timestamp()
