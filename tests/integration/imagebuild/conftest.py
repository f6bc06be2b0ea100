from __future__ import annotations

from pathlib import Path


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
