from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.image import ImageStore
from tests.image_fixtures import busybox_rootfs, file, write_tar
from tests.integration.registry.helpers import Registry, bcrypt_htpasswd, start_registry

USER, PASSWORD = "alice", "wonderland"

if not shutil.which("docker-registry"):
    pytest.skip("docker-registry is not installed", allow_module_level=True)


def _stopped(registry: Registry) -> None:
    registry.stop()
    assert registry.proc.poll() is not None, "docker-registry still running"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain registry on 127.0.0.1 (shared: tests use their own repository names)."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    _stopped(reg)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry that wants HTTP basic auth (htpasswd, bcrypt) for alice:wonderland."""
    reg = start_registry(
        tmp_path_factory.mktemp("registry-auth"), htpasswd=bcrypt_htpasswd(USER, PASSWORD)
    )
    yield reg
    _stopped(reg)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "busybox.tar")


@pytest.fixture
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ORCHESTRATOR_ROOT. Replaces the session-wide leak check of tests/conftest.py
    here: that one also sees the cgroups and monitors of other suites running at the same time
    on this host, and these tests touch no mount, cgroup or interface. What they could leak
    (threads of the client or of a test proxy, a process) is checked instead."""
    root = tmp_path / "state"
    root.mkdir()
    monkeypatch.setenv("ORCHESTRATOR_ROOT", str(root))
    monkeypatch.delenv("ORCHESTRATOR_REGISTRY_AUTH", raising=False)
    threads = set(threading.enumerate())
    yield root
    deadline = time.monotonic() + 5
    while True:
        extra = [
            t.name for t in set(threading.enumerate()) - threads if t.is_alive() and not t.daemon
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"threads left running: {extra}"
    assert not _processes_mentioning(str(root)), "a process of this test is still running"


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture
def store(state_root: Path) -> ImageStore:
    return ImageStore(state_root / "images")


@pytest.fixture
def new_store(tmp_path: Path) -> Callable[[], ImageStore]:
    """Fresh, empty stores (the other end of a push)."""
    count = [0]

    def make() -> ImageStore:
        count[0] += 1
        return ImageStore(tmp_path / f"store{count[0]}")

    return make


@pytest.fixture
def small_image(store: ImageStore, tmp_path: Path) -> Callable[[str, bytes], str]:
    """Import a one-file image under a name; returns the image id."""

    def make(ref: str, data: bytes = b"hello\n") -> str:
        tar = write_tar(tmp_path / f"{abs(hash((ref, data)))}.tar", [file("hello.txt", data)])
        return store.import_rootfs_tar(tar, ref).id

    return make
