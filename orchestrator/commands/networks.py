"""Network commands: network create|ls|inspect|rm|prune|connect|disconnect, and port."""

from __future__ import annotations

import argparse
import json
from typing import Any

from orchestrator.errors import UserError


def add_parsers(sub: Any) -> None:
    network = sub.add_parser("network", help="manage networks")
    nsub = network.add_subparsers(dest="network_command", metavar="COMMAND", required=True)

    p = nsub.add_parser("create", help="create a bridge network")
    p.add_argument("--subnet", help="CIDR (default: a free one from the address pools)")
    p.add_argument("--gateway", help="the bridge's address (default: the subnet's first)")
    p.add_argument("--internal", action="store_true", help="no route out of the network")
    p.add_argument("-d", "--driver", default="bridge", help="bridge (the only driver)")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument("name")
    p.set_defaults(func=cmd_create)

    p = nsub.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true", help="names only")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_ls)

    p = nsub.add_parser("inspect", help="show networks as JSON, with their containers")
    p.add_argument("networks", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = nsub.add_parser("rm", aliases=["remove"], help="remove networks")
    p.add_argument("networks", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = nsub.add_parser("prune", help="remove every network without containers")
    p.add_argument("-f", "--force", action="store_true", help="(accepted; never asks)")
    p.set_defaults(func=cmd_prune)

    p = nsub.add_parser("connect", help="connect a container to a network")
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--ip", help="its IPv4 address there")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_connect)

    p = nsub.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true", help="(accepted)")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_disconnect)

    p = sub.add_parser("port", help="list a container's published ports")
    p.add_argument("container")
    p.add_argument("private", nargs="?", metavar="PORT[/PROTO]")
    p.set_defaults(func=cmd_port)


def _networks(args: argparse.Namespace) -> Any:
    from orchestrator.containers import Containers
    from orchestrator.paths import state_root

    return Containers(state_root(args.root)).networks


def cmd_create(args: argparse.Namespace) -> int:
    if args.driver != "bridge":
        raise UserError(f"--driver {args.driver}: only bridge networks are supported")
    labels = {}
    for item in args.label:
        key, _, value = item.partition("=")
        if not key:
            raise UserError(f"--label {item}: expected KEY=VALUE")
        labels[key] = value
    network = _networks(args).create(
        args.name,
        subnet=args.subnet,
        gateway=args.gateway,
        internal=args.internal,
        labels=labels,
    )
    print(network["id"])
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    rows = _networks(args).all()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if args.quiet:
        for row in rows:
            print(row["name"])
        return 0
    print(f"{'NETWORK ID':14}{'NAME':24}{'DRIVER':10}{'SUBNET':20}INTERNAL")
    for row in rows:
        internal = "yes" if row["internal"] else "no"
        print(f"{row['id'][:12]:14}{row['name']:24}{row['driver']:10}{row['subnet']:20}{internal}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    networks = _networks(args)
    print(json.dumps([networks.inspect(name) for name in args.networks], indent=2))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    networks = _networks(args)
    for name in args.networks:
        networks.remove(name)
        print(name)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    for name in _networks(args).prune():
        print(name)
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    from orchestrator.netflags import _ipv4

    networks = _networks(args)
    container = networks.containers.get(args.container)
    ip = _ipv4(args.ip, "--ip") if args.ip is not None else None
    networks.connect(container, args.network, tuple(args.alias), ip)
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    networks = _networks(args)
    networks.disconnect(networks.containers.get(args.container), args.network)
    return 0


def cmd_port(args: argparse.Namespace) -> int:
    networks = _networks(args)
    container = networks.containers.get(args.container)
    wanted = None
    if args.private:
        port, _, proto = args.private.partition("/")
        if not port.isdigit():
            raise UserError(f"port {args.private}: expected PORT or PORT/PROTO")
        wanted = (int(port), proto or "tcp")
    bindings = networks.bindings(container.id)
    for b in bindings:
        if wanted and (b.port, b.protocol) != wanted:
            continue
        host = b.host_ip or "0.0.0.0"
        print(
            f"{host}:{b.host_port}" if wanted else f"{b.port}/{b.protocol} -> {host}:{b.host_port}"
        )
    if wanted and not any((b.port, b.protocol) == wanted for b in bindings):
        raise UserError(f"container {container.name} does not publish {args.private}")
    return 0
