"""Networking's pure logic: IPAM, port bindings, hosts and resolv.conf, links, run's flags."""

from __future__ import annotations

import argparse
import ipaddress

import pytest

from orchestrator.errors import UserError
from runtime.net import hosts, ipam, links, ports
from runtime.net.nft import Binding, network_rules, port_rules

N = ipaddress.IPv4Network


# -- IPAM --------------------------------------------------------------------------------------


def test_subnet_avoids_host_routes_and_our_networks() -> None:
    taken = [N("172.17.0.0/16"), N("172.18.5.0/24"), N("192.0.2.0/24")]
    assert ipam.choose_subnet(ipam.DEFAULT_POOLS, taken) == N("172.19.0.0/16")
    pools = ipam.parse_pools("10.99.0.0/16:24")
    assert ipam.choose_subnet(pools, [N("10.99.0.0/23")]) == N("10.99.2.0/24")


def test_a_route_covering_the_pool_exhausts_it() -> None:
    pools = ipam.parse_pools("10.99.0.0/23:24")
    with pytest.raises(ipam.IpamError, match="every subnet"):
        ipam.choose_subnet(pools, [N("10.0.0.0/8")])


@pytest.mark.parametrize("text", ["10.0.0.0/33", "nonsense", "10.0.0.0/16:8", ""])
def test_bad_pools(text: str) -> None:
    with pytest.raises(ipam.IpamError):
        ipam.parse_pools(text)


def test_subnet_checks() -> None:
    with pytest.raises(ipam.IpamError, match="invalid subnet"):
        ipam.parse_subnet("10.1.2.3/24")  # host bits set
    with pytest.raises(ipam.IpamError, match="too small"):
        ipam.parse_subnet("10.1.2.0/31")
    with pytest.raises(ipam.IpamError, match=r"overlaps network 10\.1\.0\.0/16 of ours"):
        ipam.check_subnet(N("10.1.2.0/24"), [N("10.1.0.0/16")], [])
    with pytest.raises(ipam.IpamError, match="already in use on this host"):
        ipam.check_subnet(N("192.0.2.0/25"), [], [N("192.0.2.0/24")])
    assert ipam.gateway_for(N("10.1.2.0/24"), None) == "10.1.2.1"
    assert ipam.gateway_for(N("10.1.2.0/24"), "10.1.2.254") == "10.1.2.254"
    with pytest.raises(ipam.IpamError, match="not a host address"):
        ipam.gateway_for(N("10.1.2.0/24"), "10.1.3.1")


def test_addresses_go_round_and_never_twice() -> None:
    subnet = N("10.1.2.0/29")  # hosts .1-.6
    taken = ["10.1.2.1"]
    got = []
    last = None
    for _ in range(5):
        last = ipam.next_address(subnet, taken, last)
        taken.append(last)
        got.append(last)
    assert got == ["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]
    with pytest.raises(ipam.IpamError, match="no free address"):
        ipam.next_address(subnet, taken, last)
    taken.remove("10.1.2.3")  # released: handed out again only after going round
    assert ipam.next_address(subnet, taken, last) == "10.1.2.3"
    assert ipam.next_address(subnet, ["10.1.2.1", "10.1.2.2"], "10.1.2.2") == "10.1.2.3"


def test_requested_address_checks() -> None:
    subnet = N("10.1.2.0/24")
    assert ipam.check_address(subnet, "10.1.2.9", ["10.1.2.1"]) == "10.1.2.9"
    for text, message in (
        ("10.1.3.9", "outside subnet"),
        ("10.1.2.255", "outside subnet"),
        ("10.1.2.1", "already in use"),
        ("banana", "invalid IP address"),
    ):
        with pytest.raises(ipam.IpamError, match=message):
            ipam.check_address(subnet, text, ["10.1.2.1"])
    assert ipam.mac_for("172.18.0.2") == "02:42:ac:12:00:02"


# -- published ports -----------------------------------------------------------------------------


def test_port_bindings() -> None:
    free = {8080, 8082}
    result = ports.resolve(
        [
            ports.Request(80, "tcp", "127.0.0.1", 8080, 8080),
            ports.Request(53, "udp", "", 8081, 8083),
            ports.Request(443),
        ],
        "10.1.2.3",
        in_use=[("udp", "", 8081)],
        bindable=lambda proto, ip, port: port in free,
        ephemeral=lambda proto, ip: 40000,
    )
    assert result == [
        Binding("127.0.0.1", 8080, "tcp", "10.1.2.3", 80),
        Binding("", 8082, "udp", "10.1.2.3", 53),
        Binding("", 40000, "tcp", "10.1.2.3", 443),
    ]


def test_port_conflicts() -> None:
    # published on every address: clashes with one address, and the other way round
    assert ports.overlaps(("tcp", "127.0.0.1", 80), [("tcp", "", 80)])
    assert ports.overlaps(("tcp", "", 80), [("tcp", "10.0.0.1", 80)])
    assert not ports.overlaps(("udp", "", 80), [("tcp", "", 80)])
    assert not ports.overlaps(("tcp", "10.0.0.2", 80), [("tcp", "10.0.0.1", 80)])
    with pytest.raises(ports.PortError, match="host port 8080 is already in use"):
        ports.resolve(
            [ports.Request(80, "tcp", "", 8080)], "10.1.2.3", [("tcp", "127.0.0.1", 8080)]
        )
    with pytest.raises(ports.PortError, match="only IPv4"):
        ports.resolve([ports.Request(80, "tcp", "::1", 8080)], "10.1.2.3", [])


def test_rules_text() -> None:
    text = port_rules("orc t ctr c", [Binding("127.0.0.1", 8080, "tcp", "10.1.2.3", 80)])
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 10.1.2.3:80" in text
    internal = network_rules("orc t net n", "orc-abc", "10.1.2.0/24", internal=True)
    assert "masquerade" not in internal and 'iifname "orc-abc" drop' in internal
    outbound = network_rules("orc t net n", "orc-abc", "10.1.2.0/24", internal=False)
    assert 'ip saddr 10.1.2.0/24 oifname != "orc-abc" masquerade' in outbound


# -- hosts, resolv.conf --------------------------------------------------------------------------


def test_hosts_file() -> None:
    text = hosts.render_hosts(
        "web",
        ["10.1.2.3"],
        [("10.1.2.4", ["db", "database"]), ("10.1.2.5", ["app", "svc"]), ("10.1.2.6", ["svc"])],
        [("gw", "10.1.2.1")],
        domainname="example.org",
    )
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[6:] == [
        "10.1.2.1\tgw",
        "10.1.2.4\tdb database",
        "10.1.2.5\tapp svc",
        "10.1.2.6\tsvc",
        "10.1.2.3\tweb.example.org web",
    ]
    assert hosts.render_hosts("lone").endswith("127.0.1.1\tlone\n")


def test_resolv_conf_drops_loopback_servers() -> None:
    host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\noptions edns0\n"
    assert hosts.render_resolv(host) == "search lan\nnameserver 10.0.0.2\noptions edns0\n"
    only_loopback = "nameserver 127.0.0.53\nnameserver ::1\n"
    assert hosts.render_resolv(only_loopback) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert hosts.render_resolv(host, ["1.1.1.1"], ["corp"], ["ndots:2"]) == (
        "search corp\nnameserver 1.1.1.1\noptions ndots:2\n"
    )


def test_write_in_place_keeps_the_inode(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "hosts"
    hosts.write_in_place(path, "a long first version\n")
    inode = path.stat().st_ino
    hosts.write_in_place(path, "short\n")
    assert path.read_text() == "short\n" and path.stat().st_ino == inode


# -- links -----------------------------------------------------------------------------------------


def test_link_variables() -> None:
    env = links.link_env(
        "db-main",
        "web",
        "10.1.2.4",
        ["5432/tcp", "53/udp"],
        ["POSTGRES_DB=app", "PATH=/bin", "HOME=/root"],
    )
    assert env == [
        "DB_MAIN_NAME=/web/db-main",
        "DB_MAIN_PORT=udp://10.1.2.4:53",
        "DB_MAIN_PORT_53_UDP=udp://10.1.2.4:53",
        "DB_MAIN_PORT_53_UDP_ADDR=10.1.2.4",
        "DB_MAIN_PORT_53_UDP_PORT=53",
        "DB_MAIN_PORT_53_UDP_PROTO=udp",
        "DB_MAIN_PORT_5432_TCP=tcp://10.1.2.4:5432",
        "DB_MAIN_PORT_5432_TCP_ADDR=10.1.2.4",
        "DB_MAIN_PORT_5432_TCP_PORT=5432",
        "DB_MAIN_PORT_5432_TCP_PROTO=tcp",
        "DB_MAIN_ENV_POSTGRES_DB=app",
    ]


# -- run's flags -----------------------------------------------------------------------------------


def _flags(*argv: str) -> argparse.Namespace:
    from orchestrator.commands.containers import _add_network_options

    parser = argparse.ArgumentParser(exit_on_error=False)
    _add_network_options(parser)
    return parser.parse_args(list(argv))


def test_run_flags_become_description_fields() -> None:
    from orchestrator.netconfig import Endpoint, Link, Publish
    from orchestrator.netflags import network_fields

    fields = network_fields(
        _flags(
            "--network", "a", "--network", "b", "--network-alias", "x", "--ip", "10.1.2.9",
            "-p", "127.0.0.1:8080:80", "-p", "9000-9001:90-91/udp", "-p", "443",
            "--add-host", "gw:host-gateway", "--link", "db:database", "--link", "cache",
            "--dns", "1.1.1.1", "--expose", "7000-7001",
        )
    )  # fmt: skip
    assert fields["network"] == "a"
    assert fields["networks"] == (Endpoint("a", ("x",), "10.1.2.9"), Endpoint("b"))
    assert fields["publish"] == (
        Publish(80, "tcp", "127.0.0.1", 8080, 8080),
        Publish(90, "udp", "", 9000, 9000),
        Publish(91, "udp", "", 9001, 9001),
        Publish(443, "tcp", "", None, None),
    )
    assert fields["links"] == (Link("db", "database"), Link("cache", "cache"))
    assert fields["extra_hosts"] == (("gw", "host-gateway"),)
    assert fields["expose"] == ("7000/tcp", "7001/tcp")
    assert network_fields(_flags())["network"] == "none"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--network", "n", "-p", "80:80:80:80"], "-p 80:80:80:80: port"),
        (["--network", "n", "-p", "70000"], "-p 70000: container port 70000 is out of range"),
        (["--network", "n", "-p", "[::1]:80:80"], "only IPv4"),
        (["-p", "80"], "-p needs a network"),
        (["--network", "host", "--ip", "10.0.0.2"], "--ip needs a network"),
        (["--network", "n", "--ip", "10.0.0"], "--ip 10.0.0: not an IPv4 address"),
        (["--network", "none", "--network", "n"], "stand alone"),
        (["--network", "container:"], "name the container"),
        (["--network", "n", "--add-host", "nocolon"], "--add-host nocolon"),
        (["--network", "n", "--dns", "x"], "--dns x: not an IP address"),
        (["--network", "n", "--expose", "80/icmp"], "--expose 80/icmp"),
    ],
)
def test_bad_run_flags(argv: list[str], message: str) -> None:
    from orchestrator.netflags import network_fields

    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        network_fields(_flags(*argv))


def test_description_record_round_trip() -> None:
    from orchestrator.description import ContainerDescription
    from orchestrator.netconfig import Endpoint, Link, Publish

    description = ContainerDescription(
        image="busybox",
        network="a",
        networks=(Endpoint("a", ("x",), "10.1.2.9"),),
        publish=(Publish(80, "tcp", "", 8080, 8080),),
        links=(Link("db", "database"),),
        extra_hosts=(("gw", "10.0.0.1"),),
        dns=("1.1.1.1",),
    )
    import json

    record = json.loads(json.dumps(description.to_record()))
    assert ContainerDescription.from_record(record) == description
