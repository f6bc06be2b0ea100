"""Bind mounts made whole before they are attached.

With mount(2), a read-only or nosuid bind mount takes two steps: the bind, then a remount of
the target found again by its path. Between the two, a process sharing a volume with the
container can swap a directory on that path for a symlink, and the flags land on another
mount (a read-only volume stays writable). The new mount API has no such gap: open_tree
clones the source as a detached mount, mount_setattr sets its flags while no one can see it,
and move_mount attaches it on a descriptor of the target already resolved inside the root.

Used by the container's init (runtime.rootfs) and by mounts into a running container
(runtime.hotmount). Kernels without the API (before 5.12) keep the mount(2) path.
"""

from __future__ import annotations

import errno
import os

from runtime.linux import syscalls as sc

# mount(2) flags that a bind mount takes per mount -> mount_setattr attributes
_ATTRS = (
    (sc.MS_RDONLY, sc.MOUNT_ATTR_RDONLY),
    (sc.MS_NOSUID, sc.MOUNT_ATTR_NOSUID),
    (sc.MS_NODEV, sc.MOUNT_ATTR_NODEV),
    (sc.MS_NOEXEC, sc.MOUNT_ATTR_NOEXEC),
    (sc.MS_NODIRATIME, sc.MOUNT_ATTR_NODIRATIME),
    (sc.MS_NOSYMFOLLOW, sc.MOUNT_ATTR_NOSYMFOLLOW),
)
_ATIME = (
    (sc.MS_NOATIME, sc.MOUNT_ATTR_NOATIME),
    (sc.MS_STRICTATIME, sc.MOUNT_ATTR_STRICTATIME),
    (sc.MS_RELATIME, sc.MOUNT_ATTR_RELATIME),
)

_available: bool | None = None


def available() -> bool:
    """Whether this kernel has open_tree, move_mount and mount_setattr."""
    global _available
    if _available is None:
        try:
            sc.mount_setattr(-1, "", sc.AT_EMPTY_PATH)
        except OSError as exc:
            _available = exc.errno != errno.ENOSYS
        else:  # (cannot succeed on fd -1)
            _available = True
    return _available


def attributes(flags: int, clear: int = 0) -> tuple[int, int]:
    """(attr_set, attr_clr) for mount(2) ``flags`` and the flags options asked to clear."""
    attr_set = attr_clr = 0
    for flag, attr in _ATTRS:
        if flags & flag:
            attr_set |= attr
        elif clear & flag:
            attr_clr |= attr
    for flag, attr in _ATIME:
        if flags & flag:  # the atime mode is one field: clear it whole, then set one
            attr_clr |= sc.MOUNT_ATTR__ATIME
            attr_set |= attr
            break
    return attr_set, attr_clr


def clone(source: str, recursive: bool, flags: int = 0, clear: int = 0, dirfd: int = -100) -> int:
    """A detached bind mount of ``source`` (resolved from ``dirfd``), with ``flags`` set on it
    (and its submounts when ``recursive``); the caller attaches or closes it."""
    tree = sc.open_tree(dirfd, source, sc.OPEN_TREE_CLONE | (sc.AT_RECURSIVE if recursive else 0))
    try:
        attr_set, attr_clr = attributes(flags, clear)
        if attr_set or attr_clr:
            scope = sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if recursive else 0)
            sc.mount_setattr(tree, "", scope, attr_set, attr_clr)
    except BaseException:
        os.close(tree)
        raise
    return tree


def attach(tree: int, target_fd: int, propagation: int = 0) -> None:
    """Attach the detached mount ``tree`` on ``target_fd``, then give it ``propagation``
    (MS_PRIVATE and friends, MS_REC for its submounts too), through the same descriptor."""
    sc.move_mount(tree, "", target_fd, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
    kind = propagation & ~sc.MS_REC
    if kind:
        scope = sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if propagation & sc.MS_REC else 0)
        sc.mount_setattr(tree, "", scope, propagation=kind)


def bind(source: str, target_fd: int, flags: int, clear: int = 0, propagation: int = 0) -> None:
    """Bind ``source`` (a host path) on ``target_fd`` with its flags, in one visible step."""
    tree = clone(source, bool(flags & sc.MS_REC), flags, clear)
    try:
        attach(tree, target_fd, propagation)
    finally:
        os.close(tree)
