from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.image_fixtures import busybox_rootfs

REPO = Path(__file__).resolve().parents[3]

Orc = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "busybox.tar")


@pytest.fixture
def orc(state_root: Path, busybox_tar: Path) -> Orc:
    """Run the orchestrator CLI against this test's state root, with busybox imported."""
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))

    def run(
        *args: str, check: bool = True, timeout: float = 60
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
    # remove what the test left running, so the leak check judges the code, not the test
    listing = run("ps", "-a", "-q", check=False).stdout.split()
    if listing:
        run("rm", "-f", *listing, check=False)
