"""COPY and ADD: find the sources, digest them for the cache, write them into a new layer.

    sources = find_sources(ctx, ["src/*.py"])           # Escape / TreeError on a bad source
    plan = plan_copy(sources, "/app/", lower, many=True)
    plan.digest()                                       # what the cache key needs
    plan.write(upper, lower, owner=(0, 0), mode=None)   # into an overlay upper directory

Docker's rules: a directory source copies its contents; a file goes to ``DEST/NAME`` when
``DEST`` ends with ``/`` or is a directory in the image, else to ``DEST`` itself; several
sources (or a wildcard) need a ``DEST`` ending with ``/``; parent directories are created
(``0755``, owned by the ``--chown`` user or root); files keep their mode and mtime, get the
``--chown`` owner (default root) and the ``--chmod`` mode when given. Excluded context paths
(``.dockerignore``) are invisible.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.imagebuild.ignore import clean, compile_pattern
from orchestrator.imagebuild.trees import FileTree, LayerTree, TreeError, split

_MAGIC = set("*?[")


@dataclass(frozen=True)
class Source:
    tree: FileTree
    rel: str  # resolved path in the tree ("" is its root)
    name: str  # the base name a file is copied under
    st: os.stat_result


@dataclass(frozen=True)
class Op:
    dest: str  # absolute path in the image, cleaned
    tree: FileTree
    rel: str
    st: os.stat_result


@dataclass
class CopyPlan:
    ops: list[Op] = field(default_factory=list)
    dest_dirs: list[str] = field(default_factory=list)  # directories that must exist first
    archives: list[tuple[Source, str]] = field(default_factory=list)  # ADD: (tar, into dir)

    def digest(self, hashes: dict[Path, str] | None = None) -> str:
        """A digest of everything the copy writes: paths, types, modes, sizes, contents."""
        h = hashlib.sha256()
        for d in self.dest_dirs:
            h.update(f"D {d}\n".encode())
        for op in self.ops:
            st = op.st
            if stat.S_ISREG(st.st_mode):
                what = file_digest(op.tree.host_path(op.rel), st, hashes)
            elif stat.S_ISLNK(st.st_mode):
                what = op.tree.readlink(op.rel)
            else:
                what = ""
            h.update(f"{op.dest}\0{st.st_mode:o}\0{st.st_size}\0{what}\n".encode())
        for src, into in self.archives:
            what = file_digest(src.tree.host_path(src.rel), src.st, hashes)
            h.update(f"A {into}\0{what}\n".encode())
        return "sha256:" + h.hexdigest()


def file_digest(path: Path, st: os.stat_result, hashes: dict[Path, str] | None = None) -> str:
    if hashes is not None and path in hashes:
        return hashes[path]
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    value = h.hexdigest()
    if hashes is not None:
        hashes[path] = value
    return value


def find_sources(tree: FileTree, patterns: list[str]) -> list[Source]:
    """Resolve source paths (wildcards allowed) in ``tree``; raises ``TreeError`` or ``Escape``."""
    found: list[Source] = []
    for pattern in patterns:
        cleaned = clean(pattern)
        if (cleaned == ".." or cleaned.startswith("../")) and tree.escapes(cleaned):
            from orchestrator.imagebuild.trees import Escape

            raise Escape(f"{pattern}: outside the build context")
        parts = split(cleaned)
        if not any(_MAGIC & set(p) for p in parts):
            rel = tree.resolve("/".join(parts))
            st = tree.lstat(rel)
            if st is None or tree.excluded(rel):
                raise TreeError(f"{pattern}: not found (or excluded by .dockerignore)")
            found.append(Source(tree, rel, parts[-1] if parts else "", st))
            continue
        matches = [""]
        for part in parts:
            if not _MAGIC & set(part):
                matches = [f"{m}/{part}" if m else part for m in matches]
                continue
            regex = compile_pattern(part)
            expanded = []
            for base in matches:
                real = tree.resolve(base)
                st = tree.lstat(real)
                if st is None or not stat.S_ISDIR(st.st_mode):
                    continue
                for name in tree.listdir(real):
                    if regex.match(name):
                        expanded.append(f"{base}/{name}" if base else name)
            matches = expanded
        hits = 0
        for match in sorted(matches):
            rel = tree.resolve(match)
            st = tree.lstat(rel)
            if st is None or tree.excluded(rel):
                continue
            found.append(Source(tree, rel, match.rpartition("/")[2], st))
            hits += 1
        if not hits:
            raise TreeError(f"{pattern}: no source files match")
    return found


def plan_copy(
    sources: list[Source],
    dest: str,
    lower: LayerTree,
    *,
    many: bool,
    unpack: bool = False,
) -> CopyPlan:
    """What to write for ``sources`` at the absolute ``dest`` over the image ``lower``."""
    plan = CopyPlan()
    to_dir = dest.endswith("/") or many
    dest = clean(dest)
    if not to_dir:
        real = lower.resolve(dest.lstrip("/")) if lower.top_first else dest.lstrip("/")
        st = lower.lstat(real) if lower.top_first else None
        to_dir = st is not None and stat.S_ISDIR(st.st_mode)
    for src in sources:
        if stat.S_ISDIR(src.st.st_mode):
            plan.dest_dirs.append(dest)
            _walk(src.tree, src.rel, dest, plan)
        elif unpack and stat.S_ISREG(src.st.st_mode) and is_archive(src.tree.host_path(src.rel)):
            plan.dest_dirs.append(dest)
            plan.archives.append((src, dest))
        else:
            target = clean(f"{dest}/{src.name}") if to_dir else dest
            plan.ops.append(Op(target, src.tree, src.rel, src.st))
    return plan


def _walk(tree: FileTree, rel: str, dest: str, plan: CopyPlan) -> bool:
    """Add the contents of directory ``rel``; True if anything was added."""
    added = False
    for name in tree.listdir(rel):
        child = f"{rel}/{name}" if rel else name
        target = clean(f"{dest}/{name}")
        st = tree.lstat(child)
        if st is None:
            continue
        excluded = tree.excluded(child)
        if stat.S_ISDIR(st.st_mode):
            if excluded and not tree.may_include_below(child):
                continue
            index = len(plan.ops)
            plan.ops.append(Op(target, tree, child, st))
            inner = _walk(tree, child, target, plan)
            if excluded and not inner:
                del plan.ops[index]
                continue
            added = True
        elif not excluded:
            plan.ops.append(Op(target, tree, child, st))
            added = True
    return added


def is_archive(path: Path) -> bool:
    """Whether ADD should unpack ``path``: a tar, possibly gzip, bzip2 or xz compressed."""
    from runtime.image.tarstream import InvalidArchive, Limits
    from runtime.image.tarstream import Source as TarSource

    try:
        with open(path, "rb") as f:
            src = TarSource(f, Limits(), hashing=False)
            head = src.read(512)
    except (InvalidArchive, OSError):
        return False
    if len(head) < 512 or not head.strip(b"\0"):
        return False
    try:
        stored = int(head[148:156].split(b"\0", 1)[0].strip() or b"x", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:])


class LayerWriter:
    """Writes a plan into an (unmounted) overlay upper directory over the image ``lower``."""

    def __init__(
        self,
        upper: Path,
        lower: LayerTree,
        owner: tuple[int, int] | None,
        mode: int | None,
    ) -> None:
        self.upper = upper
        self.lower = lower
        self.owner = owner
        self.mode = mode
        self.dir_times: dict[str, tuple[float, float]] = {}
        self.now = time.time()

    def _host(self, dest: str) -> Path:
        return self.upper.joinpath(*split(dest)) if split(dest) else self.upper

    def ensure_dir(self, dest: str, *, from_st: os.stat_result | None = None) -> str:
        """Make ``dest`` a directory in the upper layer (parents too); returns its real path
        (symlinked directories of the image are followed)."""
        parts = split(dest)
        if self.lower.top_first:
            parts = split(self.lower.resolve("/".join(parts)))
        path = self.upper
        for i, part in enumerate(parts):
            rel = "/".join(parts[: i + 1])
            path = path / part
            st = _lstat(path)
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue
            if st is not None:
                path.unlink()  # something of this copy that a directory now replaces
            lower_st = self.lower.lstat(rel) if self.lower.top_first else None
            last = i == len(parts) - 1
            os.mkdir(path, 0o700)
            if lower_st is not None and stat.S_ISDIR(lower_st.st_mode):
                os.chown(path, lower_st.st_uid, lower_st.st_gid)
                os.chmod(path, stat.S_IMODE(lower_st.st_mode))
                self.dir_times["/" + rel] = (lower_st.st_atime, lower_st.st_mtime)
            elif last and from_st is not None:
                self._meta(path, from_st, is_dir=True)
                self.dir_times["/" + rel] = (from_st.st_atime, from_st.st_mtime)
            else:
                uid, gid = self.owner or (0, 0)
                os.chown(path, uid, gid)
                os.chmod(path, 0o755)
                self.dir_times["/" + rel] = (self.now, self.now)
        return "/" + "/".join(parts)

    def _meta(self, path: Path, st: os.stat_result, *, is_dir: bool = False) -> None:
        uid, gid = self.owner or (0, 0)
        os.chown(path, uid, gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, self.mode if self.mode is not None else stat.S_IMODE(st.st_mode))

    def write(self, plan: CopyPlan) -> None:
        for d in plan.dest_dirs:
            self.ensure_dir(d)
        for op in plan.ops:
            parent, _, name = op.dest.rpartition("/")
            real_parent = self.ensure_dir(parent or "/")
            target = self._host(real_parent) / name
            st = op.st
            existing = _lstat(target)
            if stat.S_ISDIR(st.st_mode):
                if existing is not None and not stat.S_ISDIR(existing.st_mode):
                    target.unlink()
                    existing = None
                if existing is None:
                    os.mkdir(target, 0o700)
                self._meta(target, st, is_dir=True)
                self.dir_times[f"{real_parent.rstrip('/')}/{name}"] = (st.st_atime, st.st_mtime)
                continue
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode):
                    import shutil

                    shutil.rmtree(target)
                else:
                    target.unlink()
            if stat.S_ISREG(st.st_mode):
                self._copy_file(op.tree.host_path(op.rel), target, st)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(op.tree.readlink(op.rel), target)
                self._meta(target, st)
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(target, 0o600)
                self._meta(target, st)
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
            # sockets and devices are not copied, as Docker does
        for src, into in plan.archives:
            self._unpack(src, into)
        self.finish()

    def _copy_file(self, source: Path, target: Path, st: os.stat_result) -> None:
        src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                while chunk := os.read(src, 1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view) :]
                uid, gid = self.owner or (0, 0)
                os.fchown(out, uid, gid)
                os.fchmod(out, self.mode if self.mode is not None else stat.S_IMODE(st.st_mode))
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(out)
        finally:
            os.close(src)

    def _unpack(self, src: Source, into: str) -> None:
        from runtime.image.extract import extract
        from runtime.image.tarstream import Limits
        from runtime.image.tarstream import Source as TarSource

        real = self.ensure_dir(into)
        with open(src.tree.host_path(src.rel), "rb") as f:
            extract(TarSource(f, Limits(), hashing=False), self._host(real), Limits())

    def finish(self) -> None:
        """Directory mtimes last (writing into a directory changes its mtime)."""
        for dest in sorted(self.dir_times, key=lambda d: -d.count("/")):
            atime, mtime = self.dir_times[dest]
            path = self._host(dest)
            if path.is_dir():
                os.utime(path, (atime, mtime))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
