"""``image bootstrap``: a Debian base image made with debootstrap (orchestrator/imagebuild/
bootstrap.py), added under the ``image`` command that ``commands/images.py`` defines."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    image = sub.choices.get("image")
    if image is None:  # the image commands are not there: nothing to add to
        return
    isub = next(a for a in image._actions if isinstance(a, argparse._SubParsersAction))
    p = isub.add_parser(
        "bootstrap",
        help="make a Debian base image with debootstrap (cached per suite and packages)",
        description="Install a Debian suite with debootstrap from the mirror apt uses on this "
        "machine, and import the tree as an image. The tree is cached (by suite, variant and "
        "packages) under $ORCHESTRATOR_CACHE_DIR, $XDG_CACHE_HOME/orchestrator or "
        "/var/cache/orchestrator, so that the next run takes seconds.",
    )
    p.add_argument("distribution", metavar="DISTRIBUTION", help="debian")
    p.add_argument("name", metavar="NAME[:TAG]", help="the image's name")
    p.add_argument("--suite", help="the suite (default: this machine's, else stable)")
    p.add_argument("--variant", default="minbase", help="minbase (default), buildd or standard")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PKG[,PKG...]",
        help="more packages to install (repeatable, comma-separated)",
    )
    p.add_argument(
        "--components",
        default="main",
        metavar="COMP[,COMP...]",
        help="archive components (default main)",
    )
    p.add_argument("--mirror", help="the archive's URL (default: the one apt uses here)")
    p.add_argument(
        "--no-cache", action="store_true", help="bootstrap afresh (and replace the cached tree)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.set_defaults(func=cmd_bootstrap)


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(word for value in values for word in value.replace(" ", ",").split(",") if word)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    import io

    from orchestrator.imagebuild.bootstrap import BootstrapOptions, bootstrap, host_suite
    from orchestrator.paths import state_root
    from runtime.image.digest import parse_reference

    options = BootstrapOptions(
        distribution=args.distribution,
        suite=args.suite or host_suite(),
        variant=args.variant,
        packages=_split(args.include),
        components=_split([args.components]),
        mirror=args.mirror,
        no_cache=args.no_cache,
    )
    err = io.StringIO() if args.quiet else sys.stderr
    result = bootstrap(state_root(args.root), args.name, options, err=err)
    if args.quiet:
        print(result.image.id)
        return 0
    how = "from the cached tree" if result.cached else "with debootstrap"
    kept = f"; cached in {result.cache_file}" if result.cache_file and not result.cached else ""
    print(f"made {args.name} {how} in {result.seconds:.1f} s{kept}", file=sys.stderr)
    names = ", ".join(parse_reference(t).familiar for t in result.image.repo_tags)
    print(f"{result.image.id}  {names}")
    return 0
