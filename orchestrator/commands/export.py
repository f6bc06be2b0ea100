"""``orchestrator export kubernetes``: write a stack as Kubernetes manifests.

orchestrator -f compose.yaml export kubernetes -o k8s/ --namespace shop
orchestrator export kubernetes --registry registry.example.com/shop | kubectl apply -f -
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="write the stack in another system's format",
        description="Write the stack in another system's format.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    k8s = targets.add_parser(
        "kubernetes",
        help="Kubernetes manifests (kubectl apply -f takes them)",
        description="Write the stack as Kubernetes manifests: one file per object in a "
        "directory, or one YAML stream. What Kubernetes cannot keep is reported as a "
        "warning naming the service and key. See docs/kubernetes.md.",
    )
    k8s.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="DIR|-",
        help="directory to write one file per object into, or - for one stream on stdout (default)",
    )
    k8s.add_argument("--namespace", metavar="NS", help="put every object in this namespace")
    k8s.add_argument(
        "--registry",
        metavar="PREFIX",
        help="name locally built images under this registry prefix, and print the pushes",
    )
    k8s.add_argument(
        "--profile",
        action="append",
        dest="profiles",
        metavar="PROFILE",
        help="enable services of this profile (repeatable; default $COMPOSE_PROFILES)",
    )
    k8s.set_defaults(func=run_kubernetes)


def run_kubernetes(args: argparse.Namespace) -> int:
    # Imported here: `orchestrator run` and --help must not pay for the export.
    from pathlib import Path

    from orchestrator.kube.base import ExportOptions
    from orchestrator.kube.export import KIND_ORDER, export_stack
    from orchestrator.kube.hostfiles import HostFiles
    from orchestrator.kube.output import check_directory, stream, write_directory
    from orchestrator.stack import load_stack

    to_stdout = args.output == "-"
    if not to_stdout:
        check_directory(Path(args.output))  # refuse before any work or warning
    stack = load_stack(args.files or None, project_name=args.project_name, profiles=args.profiles)
    for warning in stack.warnings:
        print(f"orchestrator: warning: {warning}", file=sys.stderr)
    result = export_stack(
        stack, ExportOptions(namespace=args.namespace, registry=args.registry), HostFiles()
    )
    for note in result.notes:
        print(f"orchestrator: warning: {note}", file=sys.stderr)
    info = sys.stderr if to_stdout else sys.stdout
    if to_stdout:
        sys.stdout.write(stream(result.manifests, stack.name))
    else:
        written = write_directory(Path(args.output), result.manifests, stack.name, KIND_ORDER)
        print(f"wrote {len(written)} objects to {args.output}", file=info)
    if result.pushes:
        print("push the locally built images first:", file=info)
        for push in result.pushes:
            print(f"  {push.command}", file=info)
    return 0
