"""Launching through the fork server: same behaviour, monitors independent of the server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runtime.api import Runtime
from runtime.forkserver import SOCKET_NAME, stop
from tests.busybox import bundle

pytestmark = pytest.mark.root


def test_fork_server_launches_and_containers_outlive_it(state_root: Path, tmp_path: Path, busybox_rootfs: Path) -> None:
    root = state_root / "runtime"
    rt = Runtime(root, fork_server=True)
    b = bundle(tmp_path / "b", ["sh", "-c", "sleep 0.5; exit 9"], lower=busybox_rootfs)
    state = rt.run("via-server", b)
    assert state.status == "running"
    assert (root / SOCKET_NAME).exists()
    stop(root)  # the server goes; the container and its monitor stay
    assert not (root / SOCKET_NAME).exists()
    assert rt.state("via-server").status == "running"
    assert rt.wait("via-server", timeout=10)["exit_code"] == 9
    rt.delete("via-server")
    # a new server starts on demand
    b2 = bundle(tmp_path / "b2", ["true"], lower=busybox_rootfs)
    rt.run("again", b2)
    assert rt.wait("again", timeout=10)["exit_code"] == 0
    rt.delete("again")


def test_fork_server_reports_setup_errors(state_root: Path, tmp_path: Path, busybox_rootfs: Path) -> None:
    from runtime.errors import SetupError

    rt = Runtime(state_root / "runtime", fork_server=True)
    b = bundle(tmp_path / "b", ["no-such-binary"], lower=busybox_rootfs)
    with pytest.raises(SetupError, match="executable file not found"):
        rt.run("bad", b)
    assert not (state_root / "runtime" / "bad").exists()


def test_fork_server_create_then_start(state_root: Path, tmp_path: Path, busybox_rootfs: Path) -> None:
    rt = Runtime(state_root / "runtime", fork_server=True)
    b = bundle(tmp_path / "b", ["sh", "-c", "exit 4"], lower=busybox_rootfs)
    assert rt.create("two-step", b).status == "created"
    time.sleep(0.05)
    assert rt.state("two-step").status == "created"
    rt.start("two-step")
    assert rt.wait("two-step", timeout=10)["exit_code"] == 4
    rt.delete("two-step")
