"""Mounts into a running container, and out of it again (enter jobs ``mount``, ``unmount``).

The work is done by a fresh child of the fork server's template (runtime.enter), as root on
the host and in the host's mount namespace:

1. the source (a volume's directory, a host folder) is cloned there as a detached mount
   (open_tree), its flags set before anyone can see it (runtime.bindmount);
2. the child joins the container's mount namespace, whose root is the container's root;
3. the target is resolved inside that root by descriptor (openat2 RESOLVE_IN_ROOT: a symlink
   in the image, or one that another container sharing a volume swapped in, stays inside the
   root), made if missing (mkdirat on the parent's descriptor, never through a path);
4. move_mount attaches the clone there.

The child does not join the container's user namespace: root of the host may act in every
mount namespace, and joining would only take privileges away. It makes a missing mount point
with the ids of the container's root (setfsuid: a user namespace's filesystem takes only ids
mapped there). Nor does it join the PID namespace, so the container's /proc has no /proc/self
for it: nothing here goes through /proc.

``unmount`` joins the mount namespace, resolves the target's parent the same way and detaches
the mount there (MNT_DETACH: processes with files open inside keep them until they close them).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from collections.abc import Callable
from typing import Any

from runtime import bindmount, protocol
from runtime.channel import Channel
from runtime.errors import Error, SetupError
from runtime.linux import syscalls as sc

IN_ROOT = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
_PROPAGATION = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
}


@dataclasses.dataclass(frozen=True)
class MountSpec:
    """A bind mount of the host path ``source`` at ``target`` inside the container."""

    source: str
    target: str
    read_only: bool = False
    nosuid: bool = True
    nodev: bool = True
    noexec: bool = False
    recursive: bool = True
    propagation: str = "rprivate"

    def flags(self) -> int:
        flags = sc.MS_REC if self.recursive else 0
        for on, flag in (
            (self.read_only, sc.MS_RDONLY),
            (self.nosuid, sc.MS_NOSUID),
            (self.nodev, sc.MS_NODEV),
            (self.noexec, sc.MS_NOEXEC),
        ):
            if on:
                flags |= flag
        return flags

    def clear_flags(self) -> int:
        """What the mount must not inherit from its source's mount (ro unless asked...)."""
        clear = 0
        for on, flag in (
            (self.read_only, sc.MS_RDONLY),
            (self.nosuid, sc.MS_NOSUID),
            (self.nodev, sc.MS_NODEV),
            (self.noexec, sc.MS_NOEXEC),
        ):
            if not on:
                clear |= flag
        return clear


def check_target(path: str) -> str:
    """The target, cleaned; an Error for one that is not an absolute path inside the root."""
    if not path.startswith("/") or "\0" in path:
        raise Error(f"mount target {path!r} must be an absolute path")
    cleaned = "/" + os.path.normpath(path).lstrip("/")
    if cleaned == "/":
        raise Error("mount target /: cannot mount over the container's root")
    return cleaned


# -- the caller's side -----------------------------------------------------------------------------


def request(server: Any, target: dict[str, Any], job: str, spec: dict[str, Any]) -> None:
    """Send a ``mount`` or ``unmount`` job for the container ``target`` (runtime.enter.Target
    as a dict) through the fork server client ``server``; raises Error with its answer."""
    sock = server.enter(protocol.EnterRequest(job=job, target=target, mount=spec), ())
    channel = Channel(sock.fileno(), is_socket=True)
    try:
        message = channel.receive()
    finally:
        channel.close()
        sock.detach()
    if not message:
        raise Error(f"{job} in {target.get('id')}: the fork server's child died")
    if "error" in message:
        raise Error(str(message["error"]))


# -- the fork server's side (a fresh child of its template, see runtime.enter) ----------------------


def serve_mount(
    raw: dict[str, Any], join: Callable[[], None], owner: tuple[int, int] | None = None
) -> None:
    """Clone the source here (the host's mount namespace), ``join`` the container's, attach.
    ``owner``: the host ids of the container's root (a user namespace's; see root_ids), with
    which a missing mount point is made."""
    spec = MountSpec(**raw)
    target = check_target(spec.target)
    propagation = _PROPAGATION.get(spec.propagation)
    if propagation is None:
        raise Error(f"mount propagation {spec.propagation!r} is not one of {sorted(_PROPAGATION)}")
    if not os.path.isabs(spec.source):
        raise Error(f"mount source {spec.source!r} must be an absolute host path")
    if not bindmount.available():
        raise Error("mounting into a running container needs open_tree and move_mount (Linux 5.12)")
    try:
        tree = bindmount.clone(spec.source, spec.recursive, spec.flags(), spec.clear_flags())
    except OSError as exc:
        raise Error(f"mount source {spec.source}: {os.strerror(exc.errno or 0)}") from None
    try:
        is_dir = stat.S_ISDIR(os.fstat(tree).st_mode)
        join()
        rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            target_fd = make_target(rootfd, target, is_dir, owner)
        finally:
            os.close(rootfd)
        try:
            bindmount.attach(tree, target_fd, propagation)
        except OSError as exc:
            raise Error(f"mount on {target}: {os.strerror(exc.errno or 0)}") from None
        finally:
            os.close(target_fd)
    finally:
        os.close(tree)


def serve_unmount(raw: dict[str, Any], join: Callable[[], None]) -> None:
    """``join`` the container's mount namespace and detach the mount at ``raw["target"]``."""
    target = check_target(str(raw.get("target", "")))
    parent, name = os.path.split(target)
    join()
    rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parent_fd = _open(rootfd, parent, os.O_PATH | os.O_DIRECTORY)
    finally:
        os.close(rootfd)
    try:
        os.fchdir(parent_fd)  # the name alone is resolved from here, and not followed
        sc.umount2(name, sc.MNT_DETACH | sc.UMOUNT_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise Error(f"unmount {target}: nothing is mounted there") from None
        raise Error(f"unmount {target}: {os.strerror(exc.errno or 0)}") from None
    finally:
        os.close(parent_fd)
        os.chdir("/")


def make_target(
    rootfd: int, path: str, directory: bool, owner: tuple[int, int] | None = None
) -> int:
    """An O_PATH descriptor of ``path`` inside the root ``rootfd``, made (a directory, or an
    empty file for a file mount) where it is missing. Each step is resolved from the root
    with RESOLVE_IN_ROOT and each entry made by mkdirat/openat on its parent's descriptor,
    so no symlink, planted or swapped in meanwhile, leads outside the root."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts)):
        last = i == len(parts) - 1
        prefix = "/".join(parts[: i + 1])
        want_dir = directory or not last
        flags = os.O_PATH | (os.O_DIRECTORY if want_dir else 0)
        try:
            fd = _open(rootfd, prefix, flags)
        except FileNotFoundError:
            fd = _make(rootfd, parts[:i], parts[i], want_dir, owner)
        except NotADirectoryError:
            kind = "a folder" if want_dir else "a file"
            raise SetupError(
                f"mount target {path}: /{prefix} is a file where {kind} is needed"
            ) from None
        if last:
            if not directory and stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                raise SetupError(f"mount target {path} is a folder where a file is needed")
            return fd
        os.close(fd)
    return os.dup(rootfd)  # (no parts: refused by check_target before)


def _make(
    rootfd: int, parent: list[str], name: str, directory: bool, owner: tuple[int, int] | None
) -> int:
    parent_fd = _open(rootfd, "/".join(parent), os.O_PATH | os.O_DIRECTORY)
    # In a user namespace's filesystem only ids mapped there may make files (EOVERFLOW).
    old = sc.set_fs_ids(*owner) if owner else None
    try:
        try:
            if directory:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            else:
                made = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=parent_fd,
                )
                os.close(made)
        except FileExistsError:
            pass  # made meanwhile, or a dangling symlink: the open below decides
    except OSError as exc:
        raise SetupError(f"cannot make mount point {name}: {exc.strerror}") from None
    finally:
        if old:
            sc.set_fs_ids(*old)
        os.close(parent_fd)
    rel = "/".join([*parent, name])
    try:
        return _open(rootfd, rel, os.O_PATH | (os.O_DIRECTORY if directory else 0))
    except OSError as exc:
        raise SetupError(f"cannot make mount point /{rel}: {exc.strerror}") from None


def root_ids(pid: int) -> tuple[int, int] | None:
    """The host uid and gid of root in process ``pid``'s user namespace; None in the
    host's own (read from the host's /proc, before joining anything)."""
    ids = []
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}") as f:
            rows = [line.split() for line in f if line.strip()]
        if rows == [["0", "0", "4294967295"]]:
            return None
        ids.append(next((int(r[1]) for r in rows if r[0] == "0"), 65534))
    return ids[0], ids[1]


def _open(rootfd: int, rel: str, flags: int) -> int:
    return sc.openat2(rootfd, rel.strip("/") or ".", flags, 0, IN_ROOT)
