"""Docker's ``save`` and ``load``: images to and from a tar archive, on stdout and stdin when
no file is named (``image save`` and ``image import`` in commands/images.py take files).

    orchestrator save busybox | gzip > busybox.tar.gz       # docker archive (--format oci)
    orchestrator load < busybox.tar                         # docker archive, OCI tar or rootfs

Both go through a temporary file in the image store (``tmp/``, named by our pid and start
time: what a killed command leaves is collected by the next one): an archive is written whole
before a byte reaches stdout, and read with random access once stdin has ended.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("save", help="write images to a tar archive (stdout by default)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument(
        "--format", choices=("docker", "oci"), default="docker", help="archive layout (docker)"
    )
    p.set_defaults(func=cmd_save)

    p = sub.add_parser("load", help="load images from a tar archive (stdin by default)")
    p.add_argument("-i", "--input", help="read this file instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true", help="(nothing else is printed)")
    p.set_defaults(func=cmd_load)


def _store(args: argparse.Namespace) -> Any:
    from orchestrator.commands.images import _store as store

    return store(args)


def _image_errors() -> tuple[type[Exception], ...]:
    from runtime.errors import NotFound
    from runtime.image import InvalidImage, InvalidReference

    return NotFound, InvalidImage, InvalidReference


def cmd_save(args: argparse.Namespace) -> int:
    if not args.output and sys.stdout.isatty():
        raise UserError(
            "cowardly refusing to save to a terminal: use the -o flag or redirect stdout"
        )
    store = _store(args)
    try:
        if args.output:
            store.save(args.images, Path(args.output), args.format)
            return 0
        tmp = store._tmp_path("save")
        try:
            store.save(args.images, tmp, args.format)
            with open(tmp, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    except _image_errors() as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from runtime.image import formats
    from runtime.image.digest import parse_reference

    store = _store(args)
    if args.input:
        if not Path(args.input).exists():
            raise UserError(f"--input {args.input}: no such file or directory")
        source, tmp = Path(args.input), None
    else:
        if sys.stdin.isatty():
            raise UserError("requested load from stdin, but stdin is a terminal: use -i or < FILE")
        tmp = store._tmp_path("load")
        with open(tmp, "xb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        if os.path.getsize(tmp) == 0:
            tmp.unlink()
            raise UserError("requested load from stdin, but stdin is empty")
        source = tmp
    try:
        images = formats.import_path(store, source, None)
    except _image_errors() as exc:
        raise UserError(str(exc)) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    for image in images:
        if image.repo_tags:
            for tag in image.repo_tags:
                print(f"Loaded image: {parse_reference(tag).familiar}")
        else:
            print(f"Loaded image ID: {image.id}")
    return 0
