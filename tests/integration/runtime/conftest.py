from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.api import Runtime
from tests.busybox import make_rootfs


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


class PooledRuntime(Runtime):
    """Launches through the fork server, each time once it holds a pre-made container, so that
    every container a test makes is served by the pool (or falls back from it on purpose)."""

    def _launch(self, container_id: str, config: Any, **options: Any) -> Any:
        from runtime.forkserver import pool_ready

        self.fork_server_client()._connect().close()  # starts the server when none runs
        deadline = time.monotonic() + 10
        while not pool_ready(self.root):
            assert time.monotonic() < deadline, "the fork server made no pre-made container"
            time.sleep(0.01)
        return super()._launch(container_id, config, **options)


@pytest.fixture(params=["direct", "pooled"])
def rt(request: pytest.FixtureRequest, state_root: Path) -> Iterator[Runtime]:
    """The runtime, forking monitors itself ("direct") or through the fork server's pool of
    pre-made containers ("pooled"): the two start paths must behave the same."""
    if request.param == "pooled":
        from tests.conftest import cgroup_version

        if cgroup_version() != 1:
            pytest.skip("pre-made containers exist on cgroup v1 only (v2 cannot rename a cgroup)")
    root = state_root / "runtime"
    runtime = PooledRuntime(root, fork_server=True) if request.param == "pooled" else Runtime(root)
    yield runtime
    for state in runtime.list():
        try:
            runtime.delete(state.id, force=True)
        except Exception:
            pass
    if request.param == "pooled":
        from runtime.forkserver import stop

        stop(root)
