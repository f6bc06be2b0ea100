"""An overlay upper directory written as an OCI layer tar: what ``commit`` and ``build`` store.

The store imports this module only when it commits a layer, so that ``tarfile`` stays out of the
commands that never write one.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Collection
from pathlib import Path
from typing import BinaryIO

from runtime.image.model import InvalidImage
from runtime.image.tarstream import CHUNK

__all__ = ["write_diff_tar"]

_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_diff_tar(diff_dir: Path, out: BinaryIO, exclude: Collection[str] = ()) -> int:
    """Write the overlay upper directory ``diff_dir`` to ``out`` as an OCI layer tar.

    Entries are in sorted order, parents first; real modes, owners, mtimes (whole seconds) and
    xattrs are kept (overlayfs's own are dropped). A 0:0 character device (a whiteout) becomes
    an empty ``.wh.NAME`` file, a directory with ``trusted.overlay.opaque=y`` gets a
    ``.wh..wh..opq`` entry, hard links within the directory become link entries. Sockets are left
    out (as Docker does); other device nodes are refused, since layers may not carry them.
    ``exclude`` names relative paths (``etc/hosts``) to leave out. Returns the number of
    entries written.
    """
    links: dict[tuple[int, int], str] = {}
    count = 0
    skip = {p.strip("/") for p in exclude}

    def header(info: tarfile.TarInfo) -> None:
        nonlocal count
        info.uname = info.gname = ""
        out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        count += 1

    def make(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        return info

    def xattrs(fd: int) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            names = os.listxattr(fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return found
            raise
        for key in sorted(names):
            if key.startswith(_OVERLAY_XATTR_PREFIXES):
                continue
            found["SCHILY.xattr." + key] = os.getxattr(fd, key).decode("utf-8", "surrogateescape")
        return found

    def walk(dir_fd: int, prefix: str) -> None:
        for name in sorted(os.listdir(dir_fd)):
            path = prefix + name
            if path in skip:
                continue
            st = os.lstat(name, dir_fd=dir_fd)
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:
                info = make(prefix + ".wh." + name, st, tarfile.REGTYPE)
                header(info)
            elif stat.S_ISDIR(mode):
                fd = os.open(name, _DIR_OPEN, dir_fd=dir_fd)
                try:
                    info = make(path + "/", st, tarfile.DIRTYPE)
                    info.pax_headers = xattrs(fd)
                    header(info)
                    try:
                        opaque = os.getxattr(fd, "trusted.overlay.opaque") == b"y"
                    except OSError:
                        opaque = False
                    if opaque:
                        marker = make(path + "/.wh..wh..opq", st, tarfile.REGTYPE)
                        marker.mode, marker.uid, marker.gid = 0, 0, 0
                        header(marker)
                    walk(fd, path + "/")
                finally:
                    os.close(fd)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    info = make(path, st, tarfile.LNKTYPE)
                    info.linkname = links[key]
                    header(info)
                    continue
                if st.st_nlink > 1:
                    links[key] = path
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                try:
                    info = make(path, st, tarfile.REGTYPE)
                    info.size = st.st_size
                    info.pax_headers = xattrs(fd)
                    header(info)
                    left = st.st_size
                    while left:
                        chunk = os.read(fd, min(CHUNK, left))
                        if not chunk:
                            raise InvalidImage(f"{path} shrank while it was being committed")
                        out.write(chunk)
                        left -= len(chunk)
                    out.write(b"\0" * (-st.st_size % 512))
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(mode):
                info = make(path, st, tarfile.SYMTYPE)
                info.linkname = os.readlink(name, dir_fd=dir_fd)
                header(info)
            elif stat.S_ISFIFO(mode):
                header(make(path, st, tarfile.FIFOTYPE))
            elif stat.S_ISSOCK(mode):
                continue
            else:
                raise InvalidImage(f"/{path} is a device node: layers may not carry devices")

    root = os.open(diff_dir, _DIR_OPEN)
    try:
        walk(root, "")
    finally:
        os.close(root)
    out.write(b"\0" * 1024)
    return count
