from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.image_fixtures import busybox_rootfs

REPO = Path(__file__).resolve().parents[3]

Orc = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "busybox.tar")


@pytest.fixture
def orc(state_root: Path, busybox_tar: Path) -> Iterator[Orc]:
    """The orchestrator CLI on this test's state root, with busybox imported."""
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))

    def run(
        *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"orchestrator {' '.join(args)} exited {done.returncode}: {done.stderr}"
            )
        return done

    run("image", "import", str(busybox_tar), "busybox")
    yield run
    listing = run("ps", "-a", "-q", check=False).stdout.split()
    if listing:
        run("rm", "-f", *listing, check=False)


def write_context(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def nothing_left(state_root: Path) -> None:
    """No working directory of a build, no temp file of the store, no container state."""
    tmp = state_root / "build-cache" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []
    store_tmp = state_root / "images" / "tmp"
    assert not store_tmp.exists() or list(store_tmp.iterdir()) == []
    runtime = state_root / "runtime"
    if runtime.exists():
        assert [
            p.name for p in runtime.iterdir() if p.is_dir() and p.name.startswith("build-")
        ] == []
