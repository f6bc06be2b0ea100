"""User namespaces, from the setup child's side (see runtime.monitor._setup).

Root of a new user namespace is an unprivileged uid on the host: everything that needs the
host's privilege (joining the cgroup, opening host paths, writing the id maps) happens before,
or from outside, the namespace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runtime.errors import SetupError
from runtime.linux import syscalls as sc
from runtime.spec import ContainerConfig


def enter(config: ContainerConfig) -> None:
    """unshare(CLONE_NEWUSER), mapped by a helper still outside it (only a process in the parent
    namespace may write the maps), then become root of the new namespace."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    target = os.getpid()
    if config.overlay:
        # The writable layer belongs to the namespace's root, or overlay mounts read-only.
        uid, gid = host_id(config.uid_mappings, 0), host_id(config.gid_mappings, 0)
        for path in (config.overlay.upperdir, config.overlay.workdir):
            os.chown(path, uid, gid)
    helper = os.fork()
    if helper == 0:
        status = 1
        try:
            os.close(ready_w)
            if os.read(ready_r, 1) == b"1":
                for name, mappings in (
                    ("uid_map", config.uid_mappings),
                    ("gid_map", config.gid_mappings),
                ):
                    lines = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
                    with open(f"/proc/{target}/{name}", "w") as f:
                        f.write(lines)
                status = 0
        except OSError as exc:
            os.write(done_w, f"writing the user namespace maps: {exc.strerror}".encode())
        finally:
            os._exit(status)
    os.close(ready_r)
    os.close(done_w)
    try:
        sc.unshare(sc.CLONE_NEWUSER)
        os.write(ready_w, b"1")
    finally:
        os.close(ready_w)
        error = os.read(done_r, 4096)
        os.close(done_r)
        _, status = os.waitpid(helper, 0)
    if error or status != 0:
        raise SetupError(error.decode() or "writing the user namespace maps failed")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def join(path: str) -> None:
    """setns into the user namespace at ``path`` (mapped by whoever made it), as its root."""
    from runtime.init import join_namespace

    join_namespace("user", path)
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        raise SetupError(f"user namespace {path}: it maps no root (uid and gid 0)") from None


def stage_host_paths(
    config: ContainerConfig, fifo: str | None
) -> tuple[ContainerConfig, str | None]:
    """Make every host path the container needs reachable from inside its user namespace.

    Root of a user namespace is an unprivileged uid on the host: it may not traverse the state
    root's directories (mode 0700). So, while still privileged, we take a private mount
    namespace, open each path, cover /tmp with a tmpfs and bind each path to /tmp/orc/N, whose
    parents anyone may traverse, and hand the init a config that names those. This mount
    namespace lives only as long as the container's setup; the host sees none of it.
    """
    import dataclasses

    from runtime.spec import Overlay

    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    wanted: list[str] = [str(config.root_path)]
    layer_parent = ""
    if config.overlay:
        # overlay wants upperdir and workdir on one mount: stage their common parent.
        layer_parent = os.path.dirname(config.overlay.upperdir)
        if os.path.dirname(config.overlay.workdir) != layer_parent:
            raise SetupError(
                "with a user namespace, upperdir and workdir must share a parent directory"
            )
        wanted += [*config.overlay.lowerdirs, layer_parent]
    wanted += [m.source for m in config.mounts if m.is_bind]
    if fifo:
        wanted.append(fifo)
    fds = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in dict.fromkeys(wanted)}
    sc.mount("tmpfs", "/tmp", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755,size=64k")
    os.mkdir("/tmp/orc", 0o755)
    staged: dict[str, str] = {}
    for i, (path, fd) in enumerate(fds.items()):
        target = f"/tmp/orc/{i}"
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.mkdir(target, 0o755)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        sc.mount(f"/proc/self/fd/{fd}", target, None, sc.MS_BIND)
        os.close(fd)
        staged[path] = target
    overlay = config.overlay
    if overlay:
        parent = staged[layer_parent]
        overlay = Overlay(
            tuple(staged[d] for d in overlay.lowerdirs),
            f"{parent}/{os.path.basename(overlay.upperdir)}",
            f"{parent}/{os.path.basename(overlay.workdir)}",
        )
    mounts = tuple(
        dataclasses.replace(m, source=staged[m.source]) if m.is_bind else m for m in config.mounts
    )
    staged_config = dataclasses.replace(
        config, root_path=Path(staged[str(config.root_path)]), overlay=overlay, mounts=mounts
    )
    return staged_config, staged[fifo] if fifo else None


def host_id(mappings: tuple[Any, ...], container_id: int) -> int:
    for m in mappings:
        if m.container_id <= container_id < m.container_id + m.size:
            return int(m.host_id + container_id - m.container_id)
    raise SetupError(f"the user namespace maps no host id to container id {container_id}")
