"""Volume commands: volume create, ls, inspect, rm, prune, attach, detach."""

from __future__ import annotations

import argparse
import json
from typing import Any

from orchestrator.errors import UserError


def add_parsers(sub: Any) -> None:
    volume = sub.add_parser("volume", help="manage volumes")
    vsub = volume.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)

    p = vsub.add_parser("create", help="make a named volume (a random name when none is given)")
    p.add_argument("-d", "--driver", default="local", help="only 'local'")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "-o", "--opt", action="append", default=[], help="type=none,o=bind,device=DIR only"
    )
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_create)

    p = vsub.add_parser("ls", aliases=["list"], help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true", help="names only")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "-f", "--filter", action="append", default=[], help="dangling=true|false, label=KEY[=V]"
    )
    p.set_defaults(func=cmd_ls)

    p = vsub.add_parser("inspect", help="show volumes as JSON")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = vsub.add_parser("rm", aliases=["remove"], help="remove volumes")
    p.add_argument("-f", "--force", action="store_true", help="even when containers use them")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = vsub.add_parser("prune", help="remove unused anonymous volumes (-a: unused named ones)")
    p.add_argument("-a", "--all", action="store_true", help="named volumes too")
    p.add_argument("-f", "--force", action="store_true", help="(no prompt is ever shown)")
    p.set_defaults(func=cmd_prune)

    p = vsub.add_parser("attach", help="mount a volume or host folder into a running container")
    p.add_argument("--ro", "--read-only", action="store_true", dest="read_only")
    p.add_argument("container")
    p.add_argument("mount", metavar="SOURCE:TARGET[:OPTIONS]")
    p.set_defaults(func=cmd_attach)

    p = vsub.add_parser("detach", help="unmount what volume attach mounted")
    p.add_argument("container")
    p.add_argument("target")
    p.set_defaults(func=cmd_detach)


def _volumes(args: argparse.Namespace) -> Any:
    from orchestrator.paths import state_root
    from orchestrator.volumes import Volumes

    return Volumes(state_root(args.root))


def cmd_create(args: argparse.Namespace) -> int:
    from orchestrator.volumes import parse_pairs

    if args.driver != "local":
        raise UserError(f"--driver {args.driver}: only the local driver exists here")
    volumes = _volumes(args)
    labels = parse_pairs(args.label, "--label")
    options = parse_pairs(args.opt, "--opt")
    if args.name is None:
        volume, _ = volumes.create(None, labels, options)
    else:
        # As Docker: creating a volume that exists (with the same options) is not an error.
        volume, made = volumes.create(args.name, labels, options, exist_ok=True)
        if not made and (volume.record.get("options") or {}) != options:
            raise UserError(f"volume {args.name} already exists with other options")
    print(volume.name)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from orchestrator.volumes import volumes_of

    volumes = _volumes(args)
    volumes.collect()
    found = volumes.all()
    used: set[str] = set()
    if any(f.startswith("dangling=") for f in args.filter):
        from orchestrator.containers import Containers

        for container in Containers(volumes.root).all():
            used |= volumes_of(container.record)
    for item in args.filter:
        key, _, value = item.partition("=")
        if key == "dangling" and value in ("true", "1", "false", "0"):
            dangling = value in ("true", "1")
            found = [v for v in found if (v.name not in used) == dangling]
        elif key == "label" and value:
            k, sep, v = value.partition("=")
            found = [
                x
                for x in found
                if k in x.record["labels"] and (not sep or x.record["labels"][k] == v)
            ]
        else:
            raise UserError(f"--filter {item}: use dangling=true|false or label=KEY[=VALUE]")
    if args.quiet:
        for v in found:
            print(v.name)
    elif args.format == "json":
        print(json.dumps([v.inspect() for v in found], indent=2))
    else:
        print(f"{'DRIVER':10}VOLUME NAME")
        for v in found:
            print(f"{'local':10}{v.name}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    volumes = _volumes(args)
    found = [volumes.get(name) for name in args.names]
    print(json.dumps([dict(v.inspect(), UsedBy=volumes.users(v.name)) for v in found], indent=2))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    volumes = _volumes(args)
    for name in args.names:
        volumes.remove(name, force=args.force)
        print(name)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    for name in _volumes(args).prune(everything=args.all):
        print(name)
    return 0


def _containers(args: argparse.Namespace) -> Any:
    from orchestrator.containers import Containers
    from orchestrator.paths import state_root

    return Containers(state_root(args.root))


def cmd_attach(args: argparse.Namespace) -> int:
    from orchestrator import volumeattach

    mount = volumeattach.parse(args.mount, args.read_only)
    volumeattach.attach(_containers(args), args.container, mount)
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    from orchestrator import volumeattach

    volumeattach.detach(_containers(args), args.container, args.target)
    return 0
