"""What every converter of :mod:`orchestrator.stack.convert` shares: the :class:`Context` (where
errors point, the project, the declared top-level names) and the helpers for values that several
keys spell the same way (``list_or_dict`` maps, scalars as text, absolute container paths).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import StackError
from orchestrator.stack.interpolate import Lookup
from orchestrator.stack.units import UnitError
from orchestrator.stack.yamlsafe import Locator, PathKey

T = TypeVar("T")


@dataclass
class Context:
    locator: Locator
    project: str
    project_dir: Path
    lookup: Lookup
    warnings: list[str] = field(default_factory=list)
    declared_networks: set[str] = field(default_factory=set)
    declared_volumes: set[str] = field(default_factory=set)
    declared_secrets: set[str] = field(default_factory=set)
    declared_configs: set[str] = field(default_factory=set)

    def error(self, path: PathKey, message: str) -> StackError:
        return self.locator.error(path, message)

    def parse(self, path: PathKey, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except UnitError as exc:
            raise self.error(path, exc.message) from None

    def host_path(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            # HOME from the stack's environment when it has one, as Compose expands it.
            home = self.lookup("HOME") or os.path.expanduser("~")
            path = home + path[1:]
        return os.path.normpath(os.path.join(self.project_dir, path))


def scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def list_or_dict(
    ctx: Context, path: PathKey, value: Any, *, keep_none: bool
) -> dict[str, str | None]:
    """A ``list_or_dict`` as a dict; ``KEY`` alone in a list (or ``KEY:`` empty) gives ``None``."""
    out: dict[str, str | None] = {}
    if value is None:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            out[k] = None if v is None and keep_none else scalar_text(v)
        return out
    for i, item in enumerate(value):
        key, sep, val = item.partition("=")
        if not key:
            raise ctx.error((*path, i), f"{item!r} has no name before '='")
        out[key] = val if sep else (None if keep_none else "")
    return out


def absolute_path(ctx: Context, path: PathKey, value: str, what: str) -> str:
    if not value.startswith("/"):
        raise ctx.error(path, f"{what} {value!r} must be an absolute path")
    if "\n" in value or "\0" in value:
        raise ctx.error(path, f"{what} contains a newline")
    return os.path.normpath(value)
