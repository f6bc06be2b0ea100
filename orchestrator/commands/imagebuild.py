"""Build commands: ``build`` (a Dockerfile into an image) and ``commit`` (a container's layer)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("context", metavar="CONTEXT", help="the build context directory")
    p.add_argument(
        "-t",
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="NAME[:TAG]",
        help="name the image (repeatable)",
    )
    p.add_argument(
        "-f",
        "--file",
        dest="dockerfile",
        metavar="DOCKERFILE",
        help="the Dockerfile (default CONTEXT/Dockerfile)",
    )
    p.add_argument(
        "--build-arg",
        dest="build_args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a build argument (KEY alone takes it from the environment)",
    )
    p.add_argument("--target", help="build this stage (by name) and the stages it needs")
    p.add_argument("--no-cache", action="store_true", help="run every step again")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("commit", help="make an image from a container's changes")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("name", nargs="?", metavar="NAME[:TAG]")
    p.add_argument("-m", "--message", help="commit message (kept in the history)")
    p.add_argument("-a", "--author", help="author (kept in the history)")
    p.set_defaults(func=cmd_commit)


def _build_args(items: list[str]) -> dict[str, str]:
    import os

    values: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UserError(f"--build-arg {item!r}: expected KEY=VALUE")
        if not eq:
            env = os.environ.get(key)
            if env is None:
                continue  # as Docker does: an unset variable is no argument
            value = env
        values[key] = value
    return values


def cmd_build(args: argparse.Namespace) -> int:
    import io

    from orchestrator.imagebuild.builder import Builder, BuildOptions
    from orchestrator.paths import state_root
    from runtime.image.digest import InvalidReference, parse_tagged

    for tag in args.tags:
        try:
            parse_tagged(tag)
        except InvalidReference as exc:
            raise UserError(f"-t {tag}: {exc}") from None
    context = Path(args.context)
    dockerfile = Path(args.dockerfile) if args.dockerfile else None
    options = BuildOptions(
        context=context,
        dockerfile=dockerfile,
        tags=list(args.tags),
        build_args=_build_args(args.build_args),
        target=args.target,
        no_cache=args.no_cache,
    )
    out = io.StringIO() if args.quiet else sys.stdout
    image = Builder(state_root(args.root), out=out).build(options)
    if args.quiet:
        print(image.id)
    return 0


def cmd_commit(args: argparse.Namespace) -> int:
    from orchestrator.imagebuild.commit import commit_container
    from orchestrator.paths import state_root
    from runtime.image.digest import InvalidReference, parse_tagged

    if args.name:
        try:
            parse_tagged(args.name)
        except InvalidReference as exc:
            raise UserError(f"{args.name}: {exc}") from None
    image = commit_container(
        state_root(args.root), args.container, args.name, message=args.message, author=args.author
    )
    print(image.id)
    return 0
