from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.busybox import make_rootfs


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def rt(state_root: Path) -> Iterator[object]:
    from runtime.api import Runtime

    runtime = Runtime(state_root / "runtime")
    yield runtime
    for state in runtime.list():
        try:
            runtime.delete(state.id, force=True)
        except Exception:
            pass
