"""The safe layer extractor: a tar stream into one directory, in overlayfs's format.

    src = Source(open(blob, "rb"), limits)
    stats = extract(src, Path("/var/lib/orchestrator/images/tmp/x-1"), limits)

Untrusted tars are the input, so:

- every path is resolved component by component through directory file descriptors opened with
  ``O_NOFOLLOW``, never by re-resolving a string; a symlink or non-directory where a parent
  should be is refused, as is any ``..`` component. A leading ``/`` is dropped (the entry stays
  inside the layer). Symlink targets are stored as given (absolute ones are legitimate) and never
  followed by us.
- hard links must name an earlier entry of the same layer, resolved the same way; ``linkat`` is
  called without ``AT_SYMLINK_FOLLOW`` and no metadata is ever applied through a link, so a
  hard link to a symlink cannot be used to chmod what the symlink points at.
- ``.wh.NAME`` becomes a 0:0 character device ``NAME``, ``.wh..wh..opq`` the xattr
  ``trusted.overlay.opaque=y`` on its directory; whiteouts that are not empty regular files, or
  unknown ``.wh..wh.*`` names, are refused (the old aufs metadata entries are skipped). Device
  nodes are refused; FIFOs are kept.
- ownership, modes (setuid, setgid, sticky included: chown first, chmod after), xattrs other than
  ``trusted.overlay.*`` / ``user.overlay.*``, and mtimes are kept; directory mtimes are set last.
- sizes, entry counts and decompression are bounded by ``Limits`` (see ``tarstream``).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from runtime.image.tarstream import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    SYMTYPE,
    Entry,
    InvalidArchive,
    Limits,
    Source,
    TarReader,
)

WHITEOUT_PREFIX = b".wh."
WHITEOUT_META_PREFIX = b".wh..wh."
WHITEOUT_OPAQUE = b".wh..wh..opq"
AUFS_META = (b".wh..wh.plnk", b".wh..wh.aufs", b".wh..wh.orph")
OPAQUE_XATTR = "trusted.overlay.opaque"
DROPPED_XATTR_PREFIXES = (b"trusted.overlay.", b"user.overlay.")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_CACHED_DIRS = 256


class UnsafeArchive(InvalidArchive):
    """An entry tries to leave its layer or is malformed in a way only an attacker produces."""


@dataclass
class LayerStats:
    entries: int = 0
    files: int = 0
    size: int = 0  # bytes of regular file content
    tar_size: int = 0  # uncompressed tar bytes
    digest: str = ""  # sha256 of the uncompressed tar (the diff id)
    raw_digest: str = ""  # sha256 of the bytes as read (the blob digest)


def split_name(name: bytes, what: str = "entry") -> list[bytes]:
    """Components of a tar name, relative to the layer root; ``..`` anywhere is refused."""
    parts = [p for p in name.split(b"/") if p and p != b"."]
    for part in parts:
        if part == b"..":
            raise UnsafeArchive(f"{what} {_show(name)} leaves the layer (contains '..')")
        if len(part) > 255:
            raise UnsafeArchive(f"{what} {_show(name)} has a component longer than 255 bytes")
        if b"\0" in part:
            raise UnsafeArchive(f"{what} {_show(name)} contains a NUL byte")
    return parts


def _show(name: bytes) -> str:
    text = name.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= 200 else text[:200] + "...")


class _Extractor:
    def __init__(self, root_fd: int, same_owner: bool) -> None:
        self._root = root_fd
        self._same_owner = same_owner
        self._dirs: dict[bytes, int] = {}
        self._dir_times: list[tuple[list[bytes], float]] = []
        self.stats = LayerStats()

    def close(self) -> None:
        self._drop_cache()

    def _drop_cache(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    # -- safe resolution ---------------------------------------------------------------------

    def _dir(self, parts: list[bytes], *, create: bool, name: bytes) -> int:
        """An fd (owned by the cache) for directory ``parts``, walked with O_NOFOLLOW."""
        if not parts:
            return self._root
        key = b"/".join(parts)
        cached = self._dirs.get(key)
        if cached is not None:
            return cached
        if len(self._dirs) >= _MAX_CACHED_DIRS:
            self._drop_cache()
        fd = self._dir(parts[:-1], create=create, name=name)
        comp = parts[-1]
        try:
            new = os.open(comp, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise UnsafeArchive(
                    f"hard link {_show(name)}: the target is not an earlier entry of the layer"
                ) from None
            os.mkdir(comp, 0o755, dir_fd=fd)
            new = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            os.fchmod(new, 0o755)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            st = os.lstat(comp, dir_fd=fd)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeArchive(
                    f"entry {_show(name)} goes through a symlink ({_show(key)}) inside the layer"
                ) from None
            if create and _is_whiteout(st):
                # Whited out earlier in this layer, now recreated as a directory: it must still
                # hide the lower layers' directory.
                os.unlink(comp, dir_fd=fd)
                os.mkdir(comp, 0o755, dir_fd=fd)
                new = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                os.fchmod(new, 0o755)
                os.setxattr(new, OPAQUE_XATTR, b"y")
            else:
                raise UnsafeArchive(
                    f"entry {_show(name)}: parent {_show(key)} is not a directory"
                ) from None
        self._dirs[key] = new
        return new

    def _forget(self, parts: list[bytes]) -> None:
        """A directory at ``parts`` is being replaced: cached fds at or below it are stale."""
        key = b"/".join(parts)
        stale = [k for k in self._dirs if k == key or k.startswith(key + b"/")]
        for k in stale:
            os.close(self._dirs.pop(k))

    def _clear(
        self, fd: int, base: bytes, parts: list[bytes], keep_dir: bool
    ) -> os.stat_result | None:
        """Remove what is at ``base`` unless it is a directory and ``keep_dir``; return its stat."""
        try:
            st = os.lstat(base, dir_fd=fd)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return st
            self._forget(parts)
            shutil.rmtree(base, dir_fd=fd)
        else:
            os.unlink(base, dir_fd=fd)
        return st

    # -- entries ------------------------------------------------------------------------------

    def entry(self, src: Source, entry: Entry) -> None:
        self.stats.entries += 1
        parts = split_name(entry.name)
        if any(p.startswith(WHITEOUT_PREFIX) for p in parts[:-1]):
            meta = [p for p in parts[:-1] if p.startswith(WHITEOUT_PREFIX)]
            if meta[0] in AUFS_META:
                src.skip(entry.size)
                return
            raise UnsafeArchive(f"malformed whiteout: {_show(entry.name)} is inside a whiteout")
        if not parts:
            if entry.type != DIRTYPE:
                raise UnsafeArchive(f"entry {_show(entry.name)} would replace the layer root")
            self._meta(self._root, entry)
            self._dir_times.append(([], entry.mtime))
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(src, entry, parts)
            return
        fd = self._dir(parts[:-1], create=True, name=entry.name)
        kind = entry.type
        if entry.is_file:
            self._clear(fd, base, parts, keep_dir=False)
            out = os.open(
                base,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=fd,
            )
            try:
                src.copy_to(out, entry.size)
                self._meta(out, entry)
                os.utime(out, (entry.mtime, entry.mtime))
            finally:
                os.close(out)
            self.stats.files += 1
            self.stats.size += entry.size
        elif kind == DIRTYPE:
            old = self._clear(fd, base, parts, keep_dir=True)
            if old is None or not stat.S_ISDIR(old.st_mode):
                os.mkdir(base, 0o700, dir_fd=fd)
            dfd = self._dir(parts, create=False, name=entry.name)
            self._meta(dfd, entry)
            if old is not None and _is_whiteout(old):
                # Whited out earlier in this layer, now a directory: keep hiding the lower one.
                os.setxattr(dfd, OPAQUE_XATTR, b"y")
            self._dir_times.append((parts, entry.mtime))
        elif kind == SYMTYPE:
            if not entry.linkname:
                raise UnsafeArchive(f"symlink {_show(entry.name)} has an empty target")
            self._clear(fd, base, parts, keep_dir=False)
            os.symlink(entry.linkname, base, dir_fd=fd)
            if self._same_owner:
                os.chown(base, entry.uid, entry.gid, dir_fd=fd, follow_symlinks=False)
            os.utime(base, (entry.mtime, entry.mtime), dir_fd=fd, follow_symlinks=False)
        elif kind == LNKTYPE:
            self._hardlink(entry, fd, base, parts)
        elif kind == FIFOTYPE:
            self._clear(fd, base, parts, keep_dir=False)
            os.mkfifo(base, 0o600, dir_fd=fd)
            # The FIFO was just made by us in a private directory: the name is not a symlink.
            if self._same_owner:
                os.chown(base, entry.uid, entry.gid, dir_fd=fd, follow_symlinks=False)
            os.chmod(base, entry.mode, dir_fd=fd)
            os.utime(base, (entry.mtime, entry.mtime), dir_fd=fd, follow_symlinks=False)
        elif kind in (CHRTYPE, BLKTYPE):
            raise UnsafeArchive(
                f"device node {_show(entry.name)} refused: layers may not carry devices"
            )
        else:
            raise UnsafeArchive(f"entry {_show(entry.name)} has unsupported type {kind!r}")

    def _hardlink(self, entry: Entry, fd: int, base: bytes, parts: list[bytes]) -> None:
        target = split_name(entry.linkname, "hard link target of")
        if not target:
            raise UnsafeArchive(f"hard link {_show(entry.name)} points at the layer root")
        if target == parts:
            return  # a link to itself: nothing to do
        if any(p.startswith(WHITEOUT_PREFIX) for p in target):
            raise UnsafeArchive(f"hard link {_show(entry.name)} points at a whiteout")
        tfd = self._dir(target[:-1], create=False, name=entry.name)
        try:
            st = os.lstat(target[-1], dir_fd=tfd)
        except FileNotFoundError:
            raise UnsafeArchive(
                f"hard link {_show(entry.name)} points at {_show(entry.linkname)}, "
                "which is not an earlier entry of the layer"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeArchive(f"hard link {_show(entry.name)} points at a directory")
        self._clear(fd, base, parts, keep_dir=False)
        os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)

    def _whiteout(self, src: Source, entry: Entry, parts: list[bytes]) -> None:
        base = parts[-1]
        if base.startswith(WHITEOUT_META_PREFIX):
            if base in AUFS_META:
                src.skip(entry.size)
                return
            if base != WHITEOUT_OPAQUE:
                raise UnsafeArchive(f"malformed whiteout {_show(entry.name)}: unknown marker")
        if not entry.is_file:
            raise UnsafeArchive(f"malformed whiteout {_show(entry.name)}: not a regular file")
        src.skip(entry.size)
        fd = self._dir(parts[:-1], create=True, name=entry.name)
        if base == WHITEOUT_OPAQUE:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
            return
        hidden = base[len(WHITEOUT_PREFIX) :]
        split_name(hidden)
        if hidden in (b"", b".", b".."):
            raise UnsafeArchive(f"malformed whiteout {_show(entry.name)}: no name")
        try:
            st = os.lstat(hidden, dir_fd=fd)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                # This layer has its own directory there: hide the lower one behind it.
                dfd = self._dir([*parts[:-1], hidden], create=False, name=entry.name)
                os.setxattr(dfd, OPAQUE_XATTR, b"y")
            return  # a non-directory of this layer already hides the lower layers
        os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=fd)
        if self._same_owner:
            os.chown(hidden, entry.uid, entry.gid, dir_fd=fd, follow_symlinks=False)

    def _meta(self, fd: int, entry: Entry) -> None:
        """Owner, then mode (chown clears setuid bits), then xattrs (chown and writes clear
        security.capability); mtimes are the caller's."""
        if self._same_owner:
            os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, entry.mode & 0o7777)
        for key, value in entry.xattrs.items():
            if key.startswith(DROPPED_XATTR_PREFIXES):
                continue
            try:
                os.setxattr(fd, key, value)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue
                raise InvalidArchive(
                    f"cannot set xattr {key.decode(errors='replace')} on {_show(entry.name)}: "
                    f"{exc.strerror}"
                ) from None

    def finish(self) -> None:
        self._drop_cache()
        for parts, mtime in reversed(self._dir_times):
            if not parts:
                os.utime(self._root, (mtime, mtime))
                continue
            try:
                fd = self._dir(parts, create=False, name=b"/".join(parts))
            except (UnsafeArchive, OSError):
                continue  # replaced by a later entry
            os.utime(fd, (mtime, mtime))
        self._drop_cache()


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def extract(src: Source, dest: Path, limits: Limits = Limits()) -> LayerStats:  # noqa: B008
    """Extract the tar read from ``src`` into the existing directory ``dest``.

    Reads the stream to its end (so its digests are complete) and raises ``InvalidArchive`` (or
    ``UnsafeArchive``) on anything refused; ``dest`` is then left partly filled for the caller to
    remove.
    """
    root = os.open(dest, _DIR_FLAGS)
    ex = _Extractor(root, same_owner=os.geteuid() == 0)
    try:
        reader = TarReader(src, limits)
        for entry in reader:
            try:
                ex.entry(src, entry)
            except InvalidArchive:
                raise
            except OSError as exc:
                raise InvalidArchive(
                    f"cannot extract {_show(entry.name)}: {exc.strerror or exc}"
                ) from None
        ex.finish()
        src.finish()
    finally:
        ex.close()
        os.close(root)
    stats = ex.stats
    stats.tar_size = src.bytes
    stats.digest = src.digest
    stats.raw_digest = src.raw_digest
    return stats


def verify(src: Source, limits: Limits = Limits()) -> LayerStats:  # noqa: B008
    """Read a layer without extracting it: checks its structure, computes its digests."""
    stats = LayerStats()
    for entry in TarReader(src, limits):
        stats.entries += 1
        split_name(entry.name)
        src.skip(entry.size)
    src.finish()
    stats.tar_size = src.bytes
    stats.digest = src.digest
    stats.raw_digest = src.raw_digest
    return stats
