"""Fill an empty volume from the image, on first use, as Docker does.

What the container would see at the mount's target (the merged view of the image's layers,
whiteouts and opaque folders honoured: orchestrator.imagebuild.trees.LayerTree, symlinks on
the way followed inside the image) is copied into the volume: folders, files, symlinks,
device nodes and FIFOs, with their owners, modes (setuid bits included), times and extended
attributes (file capabilities). The volume's own folder takes the owner and mode of the
target folder, so that a database image's ``/var/lib/db`` (owned by its user, mode 0700) is
usable from the volume.

The copy writes only through descriptors of folders it made itself (mkdirat, openat with
O_EXCL|O_NOFOLLOW): a symlink that another container puts into a shared volume meanwhile
cannot send a write elsewhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from orchestrator.imagebuild.trees import LayerTree, TreeError

_SKIP_XATTRS = ("trusted.overlay.",)


def image_kind(layers: list[Path], target: str) -> str | None:
    """What the image has at ``target``: "dir", "file" (anything else), or None (nothing)."""
    tree = LayerTree(layers)
    try:
        rel = tree.resolve(target)
    except TreeError:
        return None
    if rel == "":
        return "dir"
    st = tree.lstat(rel)
    if st is None:
        return None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def fill(layers: list[Path], target: str, data: Path) -> bool:
    """Copy the image's folder at ``target`` into the empty folder ``data``; False when there
    is nothing to copy or ``data`` is not empty (a volume is filled once)."""
    tree = LayerTree(layers)
    try:
        rel = tree.resolve(target)
    except TreeError:
        return False
    st = tree.lstat(rel) if rel else None
    if not rel or st is None or not stat.S_ISDIR(st.st_mode):
        return False
    dest = os.open(data, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.listdir(dest):
            return False
        _copy_dir(tree, rel, dest)
        _finish(dest, st, tree.host_path(rel))
    finally:
        os.close(dest)
    return True


def _copy_dir(tree: LayerTree, rel: str, dest: int) -> None:
    for name in tree.listdir(rel):
        child = f"{rel}/{name}"
        st = tree.lstat(child)
        if st is None:
            continue
        source = tree.host_path(child)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dest)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dest)
            try:
                _copy_dir(tree, child, sub)
                _finish(sub, st, source)
            finally:
                os.close(sub)
        elif stat.S_ISREG(mode):
            _copy_file(source, name, dest, st)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), name, dir_fd=dest)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dest, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dest, follow_symlinks=False)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=dest)
            node = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=dest)
            try:
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dest, follow_symlinks=False)
                os.chmod(f"/proc/self/fd/{node}", stat.S_IMODE(mode))
            finally:
                os.close(node)
        # sockets are left out: they mean nothing without their process


def _copy_file(source: Path, name: str, dest: int, st: os.stat_result) -> None:
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        out = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dest,
        )
        try:
            remaining = st.st_size
            while remaining > 0:
                sent = os.copy_file_range(src, out, remaining)
                if sent == 0:
                    break
                remaining -= sent
            _finish(out, st, source)
        finally:
            os.close(out)
    finally:
        os.close(src)


def _finish(fd: int, st: os.stat_result, source: Path) -> None:
    """Owner, then mode (a chown clears setuid bits), extended attributes, times."""
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(source, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        if name.startswith(_SKIP_XATTRS):
            continue
        try:
            os.setxattr(fd, name, os.getxattr(source, name, follow_symlinks=False))
        except OSError:
            pass  # an attribute this filesystem cannot hold: the copy goes on without it
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
