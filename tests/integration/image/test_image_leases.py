"""Leases: a build's or a pull's work in progress survives rmi and prune in other processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runtime.image import ImageStore

pytestmark = pytest.mark.root


def _layer_dir(tmp_path: Path, name: str) -> Path:
    upper = tmp_path / name
    upper.mkdir()
    (upper / "file").write_text(name)
    return upper


def test_prune_keeps_leased_layers_until_the_lease_ends(state_root: Path, tmp_path: Path) -> None:
    builder = ImageStore(state_root / "images")
    other = ImageStore(state_root / "images")  # as another process would see the store
    with builder.lease() as lease:
        layer = builder.commit_diff(_layer_dir(tmp_path, "step"))
        assert layer is not None
        assert layer.diff_id in lease.items and layer.blob in lease.items
        other.prune()
        assert builder.layer_known(layer.blob, layer.diff_id)  # held: still there
    other.prune()
    assert not builder.layer_known(layer.blob, layer.diff_id)  # the lease ended: collected


def test_a_dead_process_lease_holds_nothing(state_root: Path, tmp_path: Path) -> None:
    store = ImageStore(state_root / "images")
    layer = store.commit_diff(_layer_dir(tmp_path, "orphan"))
    assert layer is not None
    leases = state_root / "images" / "leases"
    leases.mkdir(exist_ok=True)
    stale = leases / "1-dead.json"
    # a pid that exists (init) but with another start time: not the process that wrote it
    stale.write_text(json.dumps({"pid": 1, "start": -1, "items": [layer.diff_id, layer.blob]}))
    store.prune()
    assert not store.layer_known(layer.blob, layer.diff_id)
    assert not stale.exists()
    assert os.getpid() > 1
