"""``version``, ``info`` and ``system df``: what runs here, and what the state root holds.

orchestrator version --format '{{.Server.KernelVersion}}'
orchestrator info --format json
orchestrator system df -v
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("version", help="versions of the orchestrator, Python, runtime and kernel")
    p.add_argument("--format", help="json, or a template such as '{{.Server.Version}}'")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("info", help="containers, images, storage, cgroups, kernel, CPUs, memory")
    p.add_argument("--format", help="json, or a template such as '{{.NCPU}}'")
    p.set_defaults(func=cmd_info)

    system = sub.add_parser("system", help="the state root as a whole")
    ssub = system.add_subparsers(dest="system_command", metavar="COMMAND")
    system.set_defaults(func=lambda args: _help(system))
    p = ssub.add_parser("df", help="disk space used by images, containers, volumes, build cache")
    p.add_argument("-v", "--verbose", action="store_true", help="each item")
    p.add_argument("--format", help="json, or a template over each summary line")
    p.set_defaults(func=cmd_df)
    p = ssub.add_parser("info", help="as `info`")
    p.add_argument("--format", help="json, or a template such as '{{.NCPU}}'")
    p.set_defaults(func=cmd_info)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _root(args: argparse.Namespace) -> Any:
    from orchestrator.paths import state_root

    return state_root(args.root)


def _formatted(fmt: str | None, value: Any) -> bool:
    """Print ``value`` by ``--format``; False when no format was given."""
    if not fmt:
        return False
    if fmt.strip() in ("json", "{{json .}}"):
        print(json.dumps(value, separators=(",", ":")))
        return True
    from orchestrator.commands.dailyverbs import fill_template

    print(fill_template(fmt, value))
    return True


def cmd_version(args: argparse.Namespace) -> int:
    from orchestrator.systeminfo import version

    facts = version()
    if _formatted(args.format, facts):
        return 0
    client, server = facts["Client"], facts["Server"]
    print("Client:")
    print(f" Version:         {client['Version']}")
    print(f" Python:          {client['Python']}")
    print(f" OS/Arch:         {client['Os']}/{client['Arch']}")
    print()
    print("Server:")
    print(f" Version:         {server['Version']}")
    print(f" Runtime:         {server['Runtime']}")
    print(f" Kernel Version:  {server['KernelVersion']}")
    print(f" Cgroup Version:  {server['CgroupVersion']} ({server['CgroupDriver']})")
    print(f" OS/Arch:         {server['Os']}/{server['Arch']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from orchestrator.diskusage import human_size
    from orchestrator.systeminfo import info

    facts = info(_root(args))
    if _formatted(args.format, facts):
        return 0
    print(f"Containers: {facts['Containers']}")
    print(f" Running: {facts['ContainersRunning']}")
    print(f" Paused: {facts['ContainersPaused']}")
    print(f" Stopped: {facts['ContainersStopped']}")
    print(f"Images: {facts['Images']}")
    print(f"Server Version: {facts['ServerVersion']}")
    print(f"Storage Driver: {facts['StorageDriver']}")
    print(f" Backing Filesystem: {facts['BackingFilesystem']}")
    print(f"Cgroup Driver: {facts['CgroupDriver']}")
    print(f"Cgroup Version: {facts['CgroupVersion']}")
    print(f"Runtime: {facts['Runtime']}")
    print(f"Supervisor: {facts['Supervisor']}")
    print(f"Kernel Version: {facts['KernelVersion']}")
    print(f"Operating System: {facts['OperatingSystem']}")
    print(f"OSType: {facts['OSType']}")
    print(f"Architecture: {facts['Architecture']}")
    print(f"CPUs: {facts['NCPU']}")
    print(f"Total Memory: {human_size(facts['MemTotal'])}")
    print(f"Name: {facts['Name']}")
    print(f"Root Dir: {facts['DockerRootDir']}")
    print(f"Python: {facts['Python']}")
    return 0


def cmd_df(args: argparse.Namespace) -> int:
    from orchestrator.diskusage import human_size
    from orchestrator.systeminfo import disk_usage, summary

    rows = disk_usage(_root(args))
    lines = summary(rows)
    if args.format:
        if args.format.strip() in ("json", "{{json .}}") and args.verbose:
            print(json.dumps({"Summary": lines, **rows}))
            return 0
        for line in lines:
            _formatted(args.format, line)
        return 0

    def percent(line: dict[str, Any]) -> str:
        share = f" ({100 * line['Reclaimable'] // line['Size']}%)" if line["Size"] else ""
        return human_size(line["Reclaimable"]) + share

    if not args.verbose:
        print(f"{'TYPE':16}{'TOTAL':8}{'ACTIVE':8}{'SIZE':12}RECLAIMABLE")
        for line in lines:
            print(
                f"{line['Type']:16}{line['TotalCount']:<8}{line['Active']:<8}"
                f"{human_size(line['Size']):12}{percent(line)}"
            )
        return 0
    print("Images space usage:\n")
    print(f"{'REPOSITORY':40}{'IMAGE ID':14}{'SIZE':12}CONTAINERS")
    for image in rows["Images"]:
        short = image["ID"].partition(":")[2][:12]
        print(
            f"{image['Repository'][:38]:40}{short:14}{human_size(image['Size']):12}{image['Containers']}"
        )
    print("\nContainers space usage:\n")
    print(f"{'CONTAINER ID':14}{'IMAGE':24}{'SIZE':12}{'STATUS':10}NAMES")
    for c in rows["Containers"]:
        print(
            f"{c['ID'][:12]:14}{str(c['Image'])[:22]:24}{human_size(c['Size']):12}"
            f"{c['State']:10}{c['Names']}"
        )
    print("\nLocal Volumes space usage:\n")
    print(f"{'VOLUME NAME':40}{'LINKS':8}SIZE")
    for v in rows["Volumes"]:
        print(f"{v['Name'][:38]:40}{v['Links']:<8}{human_size(v['Size'])}")
    print("\nBuild cache usage: " + human_size(sum(int(b["Size"]) for b in rows["BuildCache"])))
    return 0
