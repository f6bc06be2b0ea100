"""The volume store on a plain folder: made and removed whole, never following a symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, NotFoundError, UserError
from orchestrator.volumes import Volumes, check_options, volumes_of


def test_create_find_remove(tmp_path: Path) -> None:
    volumes = Volumes(tmp_path)
    volume, made = volumes.create("data", {"a": "b"})
    assert made and volume.data == tmp_path / "volumes" / "data" / "_data"
    assert volume.data.is_dir() and volume.inspect()["Labels"] == {"a": "b"}
    assert volumes.create("data", exist_ok=True) == (volume, False)
    with pytest.raises(ConflictError, match="already exists"):
        volumes.create("data")
    anonymous, _ = volumes.create(None, owner="c" * 64, auto_remove=True)
    assert len(anonymous.name) == 64 and anonymous.anonymous
    assert [v.name for v in volumes.all()] == sorted(["data", anonymous.name])
    volumes.remove("data")
    with pytest.raises(NotFoundError, match="no such volume: data"):
        volumes.remove("data")
    assert volumes.collect() == [anonymous.name]  # its owner (never made) is gone
    assert os.listdir(tmp_path / "volumes") == [".lock"]


def test_removal_never_follows_a_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    volumes = Volumes(tmp_path / "root")
    volume, _ = volumes.create("data")
    (volume.data / "link").symlink_to(outside)
    (volume.data / "dir").mkdir()
    (volume.data / "dir" / "link").symlink_to(outside / "precious")
    volumes.remove("data")
    assert (outside / "precious").read_text() == "keep"
    # a "volume" that is itself a symlink out is no volume at all
    (tmp_path / "root" / "volumes" / "sneaky").symlink_to(outside)
    with pytest.raises(NotFoundError):
        volumes.remove("sneaky")
    assert (outside / "precious").read_text() == "keep"


def test_leftovers_of_a_crash_are_removed(tmp_path: Path) -> None:
    volumes = Volumes(tmp_path)
    volumes.create("data")
    for leftover in (".trash-0123", ".new-4567"):
        (tmp_path / "volumes" / leftover / "_data").mkdir(parents=True)
    assert [v.name for v in volumes.all()] == ["data"]  # (trash removed on the way)
    volumes.create("more")  # (an unfinished creation removed under the lock)
    assert sorted(os.listdir(tmp_path / "volumes")) == [".lock", "data", "more"]


def test_driver_options(tmp_path: Path) -> None:
    assert check_options({}) is None
    assert check_options({"type": "none", "o": "bind", "device": str(tmp_path)}) == str(tmp_path)
    for options, message in (
        ({"type": "tmpfs", "device": "tmpfs"}, "only type=none,o=bind,device=DIR"),
        ({"type": "none", "o": "bind", "device": "/no/such"}, "not an existing absolute folder"),
        ({"size": "1g"}, "the local driver takes type, o and device"),
    ):
        with pytest.raises(UserError, match=message):
            check_options(options)
    volumes = Volumes(tmp_path / "root")
    device = tmp_path / "device"
    device.mkdir()
    volume, _ = volumes.create("dev", options={"type": "none", "o": "bind", "device": str(device)})
    assert volume.data == device
    (device / "f").write_text("mine")
    volumes.remove("dev")
    assert (device / "f").read_text() == "mine"  # the host folder is the user's


def test_volumes_a_record_names() -> None:
    record = {
        "mounts": [{"type": "volume", "source": "a"}, {"type": "bind", "source": "/h"}],
        "attached": [{"type": "volume", "source": "b"}],
        "options": {"mounts": [{"type": "volume", "source": "c"}, {"type": "volume"}]},
    }
    assert volumes_of(record) == {"a", "b", "c"}
