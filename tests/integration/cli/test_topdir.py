"""The directories of per-container trees (the containers' and the runtime's) are marked for
ext4's Orlov allocator to spread their subdirectories over the block groups
(runtime.linux.topdir); on a file system without the flag, nothing fails."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from runtime.linux import topdir
from tests.cli import Orc

pytestmark = pytest.mark.root

EXT4_SUPER_MAGIC = 0xEF53


def _on_ext4(path: Path) -> bool:
    # struct statfs begins with f_type (a long on x86-64)
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(256)
    assert libc.statfs(str(path).encode(), buffer) == 0
    return int.from_bytes(buffer.raw[:8], "little") == EXT4_SUPER_MAGIC


def test_container_trees_are_spread(orc: Orc, state_root: Path) -> None:
    if not _on_ext4(state_root):
        pytest.skip(f"{state_root} is not on ext4 (this machine's is: CI runs it)")
    orc("run", "-d", "--name", "spread", "busybox", "sleep", "300")
    for directory in (state_root / "containers", state_root / "runtime"):
        flags = topdir.flags(directory)
        assert flags is not None and flags & topdir.FS_TOPDIR_FL, directory
    # a container's own directories are left as they are (they are one tree)
    (container,) = [p for p in (state_root / "containers").iterdir() if p.is_dir()]
    assert not (topdir.flags(container) or 0) & topdir.FS_TOPDIR_FL
    orc("rm", "-f", "spread")


def test_marking_is_a_hint_only(tmp_path: Path) -> None:
    marked = tmp_path / "marked"
    marked.mkdir()
    assert topdir.mark_top(marked) == _on_ext4(tmp_path)
    assert topdir.mark_top(marked) == _on_ext4(tmp_path)  # (again: no change, no error)
    # tmpfs has inode flags but not this one: refused, quietly
    shm = Path("/dev/shm") / f"orc-topdir-{os.getpid()}"
    shm.mkdir()
    try:
        assert topdir.mark_top(shm) is False
        assert not (topdir.flags(shm) or 0) & topdir.FS_TOPDIR_FL
    finally:
        shm.rmdir()
