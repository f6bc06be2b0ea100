"""The working directory made in the upper layer when the image lacks it (orchestrator.workdir)."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.workdir import ensure


def layers(tmp_path: Path) -> tuple[Path, Path, Path]:
    low, high, upper = tmp_path / "low", tmp_path / "high", tmp_path / "upper"
    for d in (low, high, upper):
        d.mkdir()
    (low / "tmp").mkdir()
    os.chmod(low / "tmp", 0o1777)
    (low / "gone").mkdir()
    (high / ".wh.gone").touch()  # the higher layer removed /gone
    (low / "file").write_text("x")
    (low / "real").mkdir()
    (high / "link").symlink_to("real")
    return low, high, upper


def test_missing_components_are_made_and_lower_folders_keep_their_looks(tmp_path: Path) -> None:
    low, high, upper = layers(tmp_path)
    ensure("/tmp/a/b", upper, [low, high])
    assert (upper / "tmp/a/b").is_dir()
    assert oct((upper / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert oct((upper / "tmp/a/b").stat().st_mode & 0o7777) == "0o755"
    ensure("/gone/x", upper, [low, high])  # whited out: made anew
    assert (upper / "gone/x").is_dir()


def test_existing_files_symlinks_and_folders_are_left_alone(tmp_path: Path) -> None:
    low, high, upper = layers(tmp_path)
    for path in ("/file/x", "/link/x", "/real", "/", "/a/../b"):
        ensure(path, upper, [low, high])
    assert list(upper.iterdir()) == []
