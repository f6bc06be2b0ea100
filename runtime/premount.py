"""/proc, /dev and /sys mounted before the container is asked for (the pool's inits).

A pre-made init (runtime.pool) already has its own PID, mount, network, IPC and cgroup
namespaces, so the kernel filesystems a container gets by default can be mounted ahead of time:
under a private tmpfs at a staging directory, with Docker's masks and read-only paths applied
and the default device nodes made. At the request each of the three trees moves into the
container's root with one ``MS_MOVE``, instead of some twenty mounts, masks and mknods.

Besides the time, this keeps the cgroup v1 mounts off the start's path: each takes the kernel's
cgroup mutex, which a concurrent move of a process into a cgroup holds for an RCU grace period.

A tree is used only when the container's config asks for exactly the default mounts below it
(and at least the default masks there); otherwise that tree is mounted the ordinary way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtime import rootfs
from runtime.linux import syscalls as sc
from runtime.rootfs import TREES, tree_of
from runtime.spec import ContainerConfig, Mount, parse_config
from runtime.specgen import default_spec


def _under(paths: tuple[str, ...], tree: str) -> tuple[str, ...]:
    return tuple(p for p in paths if tree_of(p) == tree)


@dataclass(frozen=True)
class Premounted:
    staging: str
    mounts: dict[str, tuple[Mount, ...]]  # per tree, the mounts made there, in order
    masked: dict[str, frozenset[str]]  # per tree, the masked paths applied there
    readonly: dict[str, frozenset[str]]

    def fitting(self, config: ContainerConfig) -> frozenset[str]:
        """The trees ``config`` can take as they are."""
        masked, readonly = set(config.masked_paths), set(config.readonly_paths)
        fit = set()
        for tree, made in self.mounts.items():
            wanted = tuple(m for m in config.mounts if tree_of(m.destination) == tree)
            if wanted == made and self.masked[tree] <= masked and self.readonly[tree] <= readonly:
                fit.add(tree)
        return frozenset(fit)

    def move_into(self, rootfd: int, tree: str) -> None:
        with rootfs.opened(rootfs.ensure_dir(rootfd, tree)) as target:
            sc.mount(f"{self.staging}{tree}", rootfs.fd_path(target), None, sc.MS_MOVE)

    def done_masks(self, trees: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
        """The masked and read-only paths already applied in ``trees``."""
        masked: frozenset[str] = frozenset().union(*(self.masked[t] for t in trees))
        readonly: frozenset[str] = frozenset().union(*(self.readonly[t] for t in trees))
        return masked, readonly


def prepare(staging: str, trees: tuple[str, ...] = TREES) -> Premounted:
    """Mount the default ``trees`` under ``staging`` (in the caller's own mount namespace, whose
    propagation must already keep its mounts from the host). A caller outside the container's
    PID or cgroup namespace can make /dev only (runtime.pool2): /proc shows the mounter's PID
    namespace, /sys/fs/cgroup its cgroup namespace."""
    config = parse_config(default_spec(["true"], rootfs="/"), Path("/"))
    sc.mount("tmpfs", staging, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
    sc.mount(None, staging, None, sc.MS_PRIVATE)  # a mount may move out of a private parent only
    stagefd = os.open(staging, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    mounts: dict[str, tuple[Mount, ...]] = {}
    masked: dict[str, frozenset[str]] = {}
    readonly: dict[str, frozenset[str]] = {}
    with rootfs.opened(stagefd):
        for tree in trees:
            made = tuple(m for m in config.mounts if tree_of(m.destination) == tree)
            for m in made:
                rootfs.mount_one(stagefd, m)
            mounts[tree] = made
        with rootfs.opened(
            rootfs.open_in_root(stagefd, "dev", os.O_RDONLY | os.O_DIRECTORY)
        ) as dev:
            rootfs.make_devices(config, dev)
        for tree in trees:
            rootfs.mask_paths(_under(config.masked_paths, tree), stagefd, f"{staging}/dev/null")
            rootfs.readonly_paths(_under(config.readonly_paths, tree), stagefd)
            masked[tree] = frozenset(_under(config.masked_paths, tree))
            readonly[tree] = frozenset(_under(config.readonly_paths, tree))
    return Premounted(staging, mounts, masked, readonly)
