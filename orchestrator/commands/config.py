"""``orchestrator config``: load, validate and print the normalised stack.

orchestrator -f compose.yaml config --format json
orchestrator config --services
orchestrator config --hash
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    parser = sub.add_parser(
        "config",
        help="validate the stack and print it in normalised form",
        description="Load the stack files, check them and print the normalised stack. "
        "Exits non-zero on any error.",
    )
    parser.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="output format (default yaml)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--services", action="store_true", help="print the service names, one per line"
    )
    group.add_argument("--hash", action="store_true", help="print each service's config hash")
    parser.add_argument(
        "--profile",
        action="append",
        dest="profiles",
        metavar="PROFILE",
        help="enable services of this profile (repeatable; default $COMPOSE_PROFILES)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only validate; print nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `orchestrator --help` stays fast.
    import yaml

    from orchestrator.stack import DependencyGraph, load_stack, stack_dict

    stack = load_stack(args.files or None, project_name=args.project_name, profiles=args.profiles)
    for warning in stack.warnings:
        print(f"orchestrator: warning: {warning}", file=sys.stderr)
    if args.quiet:
        return 0
    if args.services:
        order = DependencyGraph.from_services(stack.services).start_order()
        sys.stdout.write("".join(f"{name}\n" for name in order))
        return 0
    if args.hash:
        sys.stdout.write(
            "".join(f"{name} {svc.config_hash}\n" for name, svc in sorted(stack.services.items()))
        )
        return 0
    data = stack_dict(stack)
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(
            yaml.safe_dump(
                data, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120
            )
        )
    return 0
