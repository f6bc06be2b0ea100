"""Image commands: image import|save|inspect|history|prune|ls|rm, images, tag, rmi."""

from __future__ import annotations

import argparse
import calendar
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConflictError, NotFoundError, UserError

if TYPE_CHECKING:
    from runtime.image import Image, ImageStore


def add_parsers(sub: Any) -> None:
    image = sub.add_parser("image", help="manage images")
    isub = image.add_subparsers(dest="image_command", metavar="COMMAND")
    image.set_defaults(func=lambda args: _help(image))

    p = isub.add_parser(
        "import",
        help="import a docker save archive, an OCI layout (directory or tar) or a rootfs tar",
    )
    p.add_argument("path", help="archive, OCI layout directory, or root filesystem tarball")
    p.add_argument("name", nargs="?", help="NAME[:TAG] for the image")
    p.set_defaults(func=cmd_import)

    p = isub.add_parser("save", help="write images to an OCI or docker archive")
    p.add_argument("images", nargs="+", metavar="NAME")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--format", choices=("oci", "docker"), default="oci")
    p.set_defaults(func=cmd_save)

    p = isub.add_parser("inspect", help="show images as JSON")
    p.add_argument("images", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_inspect)

    p = isub.add_parser("history", help="show the history of an image")
    p.add_argument("image", metavar="NAME")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_history)

    p = isub.add_parser("prune", help="remove unused images, blobs and layers")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (nothing is asked)")
    p.set_defaults(func=cmd_prune)

    for parent, name in ((isub, "ls"), (sub, "images")):
        p = parent.add_parser(name, help="list images")
        p.add_argument("-q", "--quiet", action="store_true", help="ids only")
        p.add_argument("--format", choices=("table", "json"), default="table")
        p.add_argument("--no-trunc", action="store_true", help="full ids")
        p.set_defaults(func=cmd_ls)

    for parent, name in ((isub, "rm"), (sub, "rmi")):
        p = parent.add_parser(name, help="remove images")
        p.add_argument("-f", "--force", action="store_true", help="even if a container uses it")
        p.add_argument("images", nargs="+", metavar="NAME")
        p.set_defaults(func=cmd_rmi)

    for parent in (isub, sub):
        p = parent.add_parser("tag", help="give an image another name")
        p.add_argument("source", metavar="SOURCE")
        p.add_argument("target", metavar="TARGET[:TAG]")
        p.set_defaults(func=cmd_tag)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _store(args: argparse.Namespace) -> ImageStore:
    from orchestrator.paths import images_dir, state_root
    from runtime.image import ImageStore

    root = state_root(getattr(args, "root", None))
    return ImageStore(images_dir(root), in_use=lambda: _in_use(root))


def _in_use(root: Path) -> set[str]:
    try:
        from orchestrator.containers import image_ids_in_use
    except ImportError:
        return set()
    return set(image_ids_in_use(root))


def _user_errors(func: Any) -> Any:
    """Image errors are the user's: one line, with the exit status of their kind."""

    def wrapper(args: argparse.Namespace) -> int:
        from runtime.errors import NotFound
        from runtime.image import ImageInUse, InvalidImage, InvalidReference

        try:
            return int(func(args))
        except NotFound as exc:
            raise NotFoundError(str(exc)) from None
        except ImageInUse as exc:
            raise ConflictError(str(exc)) from None
        except (InvalidImage, InvalidReference) as exc:
            raise UserError(str(exc)) from None

    wrapper.__doc__ = func.__doc__
    return wrapper


def _familiar(ref: str) -> str:
    from runtime.image.digest import parse_reference

    return parse_reference(ref).familiar


@_user_errors
def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise UserError(f"{args.path}: no such file or directory")
    image = _store(args).import_path(path, args.name)
    names = ", ".join(_familiar(t) for t in image.repo_tags)
    print(f"{image.id}" + (f"  {names}" if names else ""))
    return 0


@_user_errors
def cmd_save(args: argparse.Namespace) -> int:
    _store(args).save(args.images, Path(args.output), args.format)
    return 0


@_user_errors
def cmd_tag(args: argparse.Namespace) -> int:
    store = _store(args)
    store.tag(store.resolve(args.source), args.target)
    return 0


@_user_errors
def cmd_rmi(args: argparse.Namespace) -> int:
    store = _store(args)
    status = 0
    for name in args.images:
        from runtime.errors import NotFound
        from runtime.image import ImageInUse

        try:
            for line in store.remove(name, force=args.force):
                print(line)
        except (NotFound, ImageInUse) as exc:
            if len(args.images) == 1:
                raise  # (nothing removed: nothing to collect)
            print(f"orchestrator: {exc}", file=sys.stderr)
            status = 1
    _collect_mountpoints(args)
    return status


def _collect_mountpoints(args: argparse.Namespace) -> None:
    from orchestrator import mountpoints
    from orchestrator.paths import state_root

    mountpoints.collect(state_root(getattr(args, "root", None)))


@_user_errors
def cmd_prune(args: argparse.Namespace) -> int:
    lines = _store(args).prune(all_unused=args.all)
    _collect_mountpoints(args)
    for line in lines:
        print(line)
    if not lines:
        print("nothing to remove")
    return 0


def _row(image: Image) -> list[dict[str, Any]]:
    from runtime.image.digest import parse_reference

    base = {"id": image.id, "created": image.created, "size": image.size}
    if not image.repo_tags:
        return [{"repository": "<none>", "tag": "<none>", **base}]
    rows = []
    for tag in image.repo_tags:
        ref = parse_reference(tag)
        rows.append({"repository": ref.familiar_name, "tag": ref.tag or "<none>", **base})
    return rows


@_user_errors
def cmd_ls(args: argparse.Namespace) -> int:
    images = _store(args).list()
    if args.quiet:
        seen = []
        for image in images:
            shown = image.id if args.no_trunc else image.short_id
            if shown not in seen:
                seen.append(shown)
        if seen:
            print("\n".join(seen))
        return 0
    rows = [row for image in images for row in _row(image)]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    table = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for row in rows:
        table.append(
            [
                row["repository"],
                row["tag"],
                row["id"] if args.no_trunc else row["id"][7:19],
                _ago(row["created"]),
                _size(row["size"]),
            ]
        )
    _print_table(table)
    return 0


@_user_errors
def cmd_inspect(args: argparse.Namespace) -> int:
    store = _store(args)
    out = []
    for name in args.images:
        image = store.resolve(name)
        digests = []
        for tag in image.repo_tags:
            from runtime.image.digest import parse_reference

            digests.append(f"{parse_reference(tag).familiar_name}@{image.manifest_digest}")
        out.append(
            {
                "Id": image.id,
                "RepoTags": [_familiar(t) for t in image.repo_tags],
                "RepoDigests": sorted(set(digests)),
                "Created": image.created,
                "Architecture": image.architecture,
                "Os": image.os,
                "Size": image.size,
                "Config": image.run_config,
                "RootFS": {"Type": "layers", "Layers": list(image.layers)},
                "Manifest": {
                    "Digest": image.manifest_digest,
                    "MediaType": image.manifest_media_type,
                },
                "LayerDirs": [str(p) for p in store.layer_dirs(image)],
            }
        )
    print(json.dumps(out, indent=2))
    return 0


@_user_errors
def cmd_history(args: argparse.Namespace) -> int:
    store = _store(args)
    image = store.resolve(args.image)
    sizes = [store.layer_size(d) for d in image.layers]
    history = image.history or [{"created": image.created} for _ in image.layers]
    rows: list[dict[str, Any]] = []
    layer = 0
    for entry in history:
        empty = bool(entry.get("empty_layer"))
        size = 0
        if not empty and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        rows.append(
            {
                "created": entry.get("created"),
                "created_by": str(entry.get("created_by", "")),
                "size": size,
                "comment": str(entry.get("comment", "")),
            }
        )
    rows.reverse()  # newest first, as Docker shows it
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    table = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for i, row in enumerate(rows):
        by = row["created_by"]
        if not args.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        table.append(
            [
                image.short_id if i == 0 else "<missing>",
                _ago(row["created"]),
                by,
                _size(row["size"]),
                row["comment"],
            ]
        )
    _print_table(table)
    return 0


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{n}B"


def _ago(created: str | None) -> str:
    if not created:
        return "N/A"
    try:
        stamp = calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return created
    seconds = max(0, int(time.time() - stamp))
    for unit, length in (
        ("year", 31536000),
        ("month", 2592000),
        ("week", 604800),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "less than a minute ago"
