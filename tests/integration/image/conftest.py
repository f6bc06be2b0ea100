from __future__ import annotations

from pathlib import Path

import pytest

from runtime.image import ImageStore


@pytest.fixture
def store(state_root: Path) -> ImageStore:
    return ImageStore(state_root / "images")
