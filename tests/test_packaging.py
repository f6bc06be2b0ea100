"""What a non-editable install carries: the stack schema and the default seccomp profile are
package data, not files that only exist beside a source checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_the_stack_schema(tmp_path: Path) -> None:
    # A copy of the sources: setuptools leaves its scratch beside the project it builds.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("orchestrator", "runtime", "schemas"):
        shutil.copytree(REPO / name, source / name, symlinks=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("orchestrator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("orchestrator/stack/stack.schema.json")
        profile = archive.read("orchestrator/seccomp_default.json")
    assert packaged == (REPO / "schemas" / "stack.schema.json").read_bytes()
    assert profile == (REPO / "orchestrator" / "seccomp_default.json").read_bytes()
