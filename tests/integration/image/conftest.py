from __future__ import annotations

from pathlib import Path

import pytest

from runtime.image import ImageStore
from tests.image_fixtures import busybox_rootfs


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem made by scripts/make-busybox-rootfs (once per session)."""
    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "busybox.tar")


@pytest.fixture
def store(state_root: Path) -> ImageStore:
    return ImageStore(state_root / "images")
