"""Root filesystem setup inside the container's new mount namespace.

Every path inside the container root is resolved by the kernel with ``openat2(RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS)`` from a descriptor of the root, and mounts target ``/proc/self/fd/N`` of
the descriptor so resolved. An image whose /proc, /dev or /etc/hosts is a symlink to a host path
therefore lands inside the container root, never on the host (runc's CVE-2019-19921 and friends).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from runtime import bindmount
from runtime.errors import SetupError
from runtime.linux import syscalls as sc
from runtime.spec import ContainerConfig, Mount

if TYPE_CHECKING:
    from runtime.premount import Premounted

IN_ROOT = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
AT_FDCWD = -100

# (name, kind, major, minor, mode): the minimal /dev every container gets.
DEFAULT_DEVICES = (
    ("null", stat.S_IFCHR, 1, 3, 0o666),
    ("zero", stat.S_IFCHR, 1, 5, 0o666),
    ("full", stat.S_IFCHR, 1, 7, 0o666),
    ("random", stat.S_IFCHR, 1, 8, 0o666),
    ("urandom", stat.S_IFCHR, 1, 9, 0o666),
    ("tty", stat.S_IFCHR, 5, 0, 0o666),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("core", "/proc/kcore"),
)


# The kernel filesystem trees a container gets by default (see runtime.premount).
TREES = ("/proc", "/dev", "/sys")


def tree_of(destination: str) -> str | None:
    for tree in TREES:
        if destination == tree or destination.startswith(tree + "/"):
            return tree
    return None


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


@contextmanager
def opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH, mode: int = 0) -> int:
    return sc.openat2(rootfd, path.lstrip("/") or ".", flags, mode, IN_ROOT)


def ensure_dir(rootfd: int, path: str) -> int:
    """Open (creating as needed) directory ``path`` inside the root; returns an O_PATH fd."""
    rel = path.strip("/")
    if not rel:
        return os.dup(rootfd)
    try:
        return open_in_root(rootfd, rel, os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise SetupError(f"mount point /{rel}: {exc.strerror}") from None
    parent, _, name = rel.rpartition("/")
    with opened(ensure_dir(rootfd, parent)) as parentfd:
        real_parent = os.open(fd_path(parentfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with opened(real_parent):
            try:
                os.mkdir(name, 0o755, dir_fd=real_parent)
            except FileExistsError:
                pass  # a dangling symlink or a race: the open below decides
    try:
        return open_in_root(rootfd, rel, os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        raise SetupError(f"cannot create mount point /{rel}: {exc.strerror}") from None


def ensure_file(rootfd: int, path: str) -> int:
    """Open (creating an empty file as needed) ``path`` inside the root; returns an O_PATH fd."""
    rel = path.strip("/")
    parent = rel.rpartition("/")[0]
    os.close(ensure_dir(rootfd, parent))
    try:
        return open_in_root(rootfd, rel, os.O_PATH)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise SetupError(f"mount point /{rel}: {exc.strerror}") from None
    try:
        fd = open_in_root(rootfd, rel, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise SetupError(f"cannot create mount point /{rel}: {exc.strerror}") from None
    os.close(fd)
    return open_in_root(rootfd, rel, os.O_PATH)


def mount_rootfs(config: ContainerConfig, propagation_done: bool = False) -> None:
    """Make our mounts invisible to the host, then mount the root (overlay or bind) on itself.
    ``propagation_done``: the caller made "/" a slave already."""
    # Propagation first: no mount we make may reach the host's namespace.
    if not propagation_done:
        make_slave()
    if config.rootfs_propagation & (sc.MS_PRIVATE | sc.MS_SLAVE | sc.MS_SHARED):
        sc.mount(None, "/", None, config.rootfs_propagation)
    root = str(config.root_path)
    if config.rootfs_propagation & sc.MS_SHARED:
        # pivot_root refuses a new root under a shared mount: its parent becomes private (as
        # runc does); the root's own propagation is set after the pivot (set_root_propagation)
        make_parent_private(root)
    if config.overlay:
        os.makedirs(root, exist_ok=True)
        mount_overlay(
            config.overlay.lowerdirs, config.overlay.upperdir, config.overlay.workdir, root
        )
    else:
        sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)


def make_slave() -> None:
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)


def make_parent_private(path: str) -> None:
    """Make the mount that holds ``path`` private if it is shared."""
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            inside = point == "/" or path == point or path.startswith(point + "/")
            if inside and len(point) >= len(best):
                best = point
                shared = any(f.startswith("shared:") for f in fields[6 : fields.index("-")])
    if shared:
        sc.mount(None, best, None, sc.MS_PRIVATE)


def set_root_propagation(config: ContainerConfig) -> None:
    """After pivot_root: the root's propagation as the config asks (shared and unbindable
    can only be set now: see mount_rootfs)."""
    if config.rootfs_propagation & (sc.MS_SHARED | sc.MS_SLAVE | sc.MS_UNBINDABLE):
        sc.mount(None, "/", None, config.rootfs_propagation)


def mount_overlay(lowerdirs: tuple[str, ...], upper: str, work: str, target: str) -> None:
    # overlay wants the top layer first. Options must fit in one page, so when the layers share a
    # parent directory we chdir there and name them relatively (as Docker's short l/ links do).
    top_first = list(reversed(lowerdirs))
    parents = {os.path.dirname(d) for d in top_first}
    cwd = None
    if len(parents) == 1:
        cwd = os.open(".", os.O_PATH | os.O_CLOEXEC)
        os.chdir(parents.pop())
        top_first = [os.path.basename(d) for d in top_first]
    data = f"lowerdir={':'.join(top_first)},upperdir={upper},workdir={work}"
    try:
        if len(data) >= 4096:
            raise SetupError(
                f"overlay: {len(lowerdirs)} layers do not fit in one mount (flatten the image)"
            )
        sc.mount("overlay", target, "overlay", 0, data)
    except OSError as exc:
        raise SetupError(f"mounting the overlay root filesystem: {exc.strerror}") from None
    finally:
        if cwd is not None:
            os.fchdir(cwd)
            os.close(cwd)


def apply_mounts(
    config: ContainerConfig,
    rootfd: int,
    before_cgroup_mount: Callable[[], None],
    premounted: Premounted | None = None,
    cgroup_version: int | None = None,
) -> frozenset[str]:
    """Mount ``config.mounts`` in order; a tree of ``premounted`` that fits the config moves in
    whole instead. Returns the trees so moved. ``cgroup_version``: of the hierarchy the
    container's cgroup is in (default: the host's layout decides its cgroup mount)."""
    moved = premounted.fitting(config) if premounted else frozenset()
    for m in config.mounts:
        tree = tree_of(m.destination) if moved else None
        if tree in moved:
            if tree == m.destination:
                assert premounted is not None
                premounted.move_into(rootfd, tree)
            continue
        try:
            if m.type == "cgroup":
                before_cgroup_mount()
                _mount_cgroup(rootfd, m, cgroup_version)
            else:
                mount_one(rootfd, m)
        except SetupError:
            raise
        except OSError as exc:
            raise SetupError(f"mount {m.type} on {m.destination}: {exc.strerror}") from None
    if any(m.destination == "/dev" for m in config.mounts):
        # In the cgroup first: its device rules, not the moment of the move, decide mknod.
        before_cgroup_mount()
        with opened(open_in_root(rootfd, "dev", os.O_RDONLY | os.O_DIRECTORY)) as devfd:
            make_devices(config, devfd, defaults="/dev" not in moved)
    return moved


def mount_one(rootfd: int, m: Mount) -> None:
    if m.type == "cgroup":
        _mount_cgroup(rootfd, m)
        return
    if m.is_bind and bindmount.available():
        _bind_one(rootfd, m)
        return
    source_is_dir = True
    if m.is_bind:
        try:
            source_is_dir = stat.S_ISDIR(os.stat(m.source).st_mode)
        except OSError as exc:
            raise SetupError(f"bind mount source {m.source}: {exc.strerror}") from None
    target_fd = (
        ensure_dir(rootfd, m.destination) if source_is_dir else ensure_file(rootfd, m.destination)
    )
    with opened(target_fd):
        target = fd_path(target_fd)
        flags = m.flags & ~sc.MS_REMOUNT
        if m.is_bind:
            sc.mount(m.source, target, None, sc.MS_BIND | (flags & sc.MS_REC))
            # Flags on a bind mount only take effect on a remount of it.
            extra = flags & ~(sc.MS_BIND | sc.MS_REC)
            if extra:
                with opened(open_in_root(rootfd, m.destination)) as again:
                    sc.mount(None, fd_path(again), None, sc.MS_BIND | sc.MS_REMOUNT | extra)
        else:
            data = m.data
            if m.type == "mqueue" or m.type == "sysfs":
                data = ""
            sc.mount(m.source, target, m.type, flags, data or None)
        if m.propagation:
            with opened(open_in_root(rootfd, m.destination)) as again:
                sc.mount(None, fd_path(again), None, m.propagation)


def _bind_one(rootfd: int, m: Mount) -> None:
    """A bind mount through runtime.bindmount: the source cloned (on the host side, before
    pivot_root) with its flags already set, attached on the target resolved inside the root;
    no path is looked up twice."""
    flags = m.flags & ~(sc.MS_REMOUNT | sc.MS_BIND)
    try:
        tree = bindmount.clone(m.source, bool(flags & sc.MS_REC), flags, m.clear_flags)
    except OSError as exc:
        raise SetupError(f"bind mount source {m.source}: {os.strerror(exc.errno or 0)}") from None
    with opened(tree):
        is_dir = stat.S_ISDIR(os.fstat(tree).st_mode)
        make = ensure_dir if is_dir else ensure_file
        with opened(make(rootfd, m.destination)) as target_fd:
            bindmount.attach(tree, target_fd, m.propagation)


def _mount_cgroup(rootfd: int, m: Mount, version: int | None = None) -> None:
    """The container's own cgroup view (read-only unless asked): cgroup2, or v1 controllers.
    ``version``: of the container's cgroup (on a hybrid host, 2 for one in the unified
    hierarchy); by default the host's layout decides."""
    ro = m.flags & sc.MS_RDONLY
    base = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    unified = version == 2 if version else os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    with opened(ensure_dir(rootfd, m.destination)) as fd:
        if unified:
            sc.mount("cgroup2", fd_path(fd), "cgroup2", base | ro)
            return
        sc.mount("tmpfs", fd_path(fd), "tmpfs", base, "mode=755")
    for name in sorted(os.listdir("/sys/fs/cgroup")):
        if name == "unified" or not os.path.ismount(f"/sys/fs/cgroup/{name}"):
            continue
        options = name if name != "systemd" else "none,name=systemd"
        with opened(ensure_dir(rootfd, f"{m.destination}/{name}")) as fd:
            try:
                sc.mount("cgroup", fd_path(fd), "cgroup", base | ro, options)
            except OSError:
                # a controller shared with another mount (cpu,cpuacct): its pair has it; or one
                # a user namespace may not mount on an older kernel: it is left out
                continue
    if ro:
        with opened(open_in_root(rootfd, m.destination)) as fd:
            sc.mount(None, fd_path(fd), None, sc.MS_REMOUNT | sc.MS_BIND | base | sc.MS_RDONLY)


def make_devices(config: ContainerConfig, devfd: int, defaults: bool = True) -> None:
    """Device nodes on the container's fresh /dev tmpfs; bind-mounted from the host in a user ns.
    ``defaults`` false: only the config's own, the default ones and links exist already."""
    in_userns = "user" in config.namespaces
    devices = list(DEFAULT_DEVICES) if defaults else []
    for d in config.raw.get("linux", {}).get("devices", []) or []:
        path = d.get("path", "")
        if not path.startswith("/dev/") or ".." in path:
            raise SetupError(f"linux.devices: {path!r} must be under /dev")
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(
            d.get("type", "")
        )
        if kind is None:
            raise SetupError(f"linux.devices: {path}: unknown type {d.get('type')!r}")
        devices.append(
            (
                path[5:],
                kind,
                int(d.get("major", 0)),
                int(d.get("minor", 0)),
                int(d.get("fileMode", 0o666)),
            )
        )
    old_umask = os.umask(0)
    try:
        for name, kind, major, minor, mode in devices:
            if "/" in name:
                parent = name.rpartition("/")[0]
                os.makedirs(f"{fd_path(devfd)}/{parent}", exist_ok=True)
            if in_userns:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=devfd)
                os.close(fd)
                host = os.path.join("/dev", name)
                sc.mount(host, f"{fd_path(devfd)}/{name}", None, sc.MS_BIND)
            else:
                try:
                    os.mknod(name, kind | mode, os.makedev(major, minor), dir_fd=devfd)
                except FileExistsError:
                    pass
        if not defaults:
            return
        for name, target in DEV_LINKS:
            try:
                os.symlink(target, name, dir_fd=devfd)
            except FileExistsError:
                pass
        if os.path.exists(f"{fd_path(devfd)}/pts/ptmx"):
            try:
                os.symlink("pts/ptmx", "ptmx", dir_fd=devfd)
            except FileExistsError:
                pass
    finally:
        os.umask(old_umask)


def pivot(rootfd: int) -> None:
    """Make the container root the process's root and drop every trace of the host's."""
    os.fchdir(rootfd)
    # pivot_root(".", ".") stacks the old root on top of the new one; no put_old directory needed.
    sc.pivot_root(".", ".")
    # Detaching the old root must not propagate to the host: make it a slave first.
    sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def _open_no_symlinks(root: int, path: str) -> int:
    """``path`` below ``root`` (AT_FDCWD: the process root), through no symlink at all."""
    if root == AT_FDCWD:
        return sc.openat2(
            root, path, os.O_PATH, 0, sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_NO_SYMLINKS
        )
    return sc.openat2(root, path.lstrip("/"), os.O_PATH, 0, IN_ROOT | sc.RESOLVE_NO_SYMLINKS)


def mask_paths(paths: Iterable[str], root: int = AT_FDCWD, null: str = "/dev/null") -> None:
    """Hide host information Docker hides: a read-only empty tmpfs on dirs, ``null`` on files."""
    for path in paths:
        try:
            fd = _open_no_symlinks(root, path)
        except OSError:
            continue  # absent in this kernel or image
        with opened(fd):
            target = fd_path(fd)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, "size=0")
            else:
                sc.mount(null, target, None, sc.MS_BIND)


def readonly_paths(paths: Iterable[str], root: int = AT_FDCWD) -> None:
    for path in paths:
        try:
            fd = _open_no_symlinks(root, path)
        except OSError:
            continue
        with opened(fd):
            sc.mount(fd_path(fd), fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
        with opened(_open_no_symlinks(root, path)) as fd:  # the new mount, on top
            flags = (
                sc.MS_BIND
                | sc.MS_REMOUNT
                | sc.MS_RDONLY
                | sc.MS_NOSUID
                | sc.MS_NODEV
                | sc.MS_NOEXEC
            )
            sc.mount(None, fd_path(fd), None, flags)


def remount_root_readonly() -> None:
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
