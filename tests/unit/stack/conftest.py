"""Fixtures for the stack tests: write stack files into a temporary project and load them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import StackError
from orchestrator.stack import Stack, load_stack

Load = Callable[..., Stack]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "myproj"
    directory.mkdir()
    return directory


@pytest.fixture
def load(project: Path) -> Load:
    """``load(yaml_text, env={}, name="compose.yaml", extra={"b.yaml": text}, **kw)``."""

    def _load(
        text: str,
        env: dict[str, str] | None = None,
        name: str = "compose.yaml",
        extra: dict[str, str] | None = None,
        **kwargs: object,
    ) -> Stack:
        (project / name).write_text(textwrap.dedent(text))
        files = [str(project / name)]
        for other, body in (extra or {}).items():
            (project / other).write_text(textwrap.dedent(body))
            files.append(str(project / other))
        return load_stack(files, environ=env or {}, **kwargs)  # type: ignore[arg-type]

    return _load


@pytest.fixture
def fails(load: Load) -> Callable[..., StackError]:
    """``fails(yaml_text, ...)`` loads and returns the StackError it must raise."""

    def _fails(text: str, *args: object, **kwargs: object) -> StackError:
        with pytest.raises(StackError) as info:
            load(text, *args, **kwargs)
        return info.value

    return _fails
