"""What a build carries from step to step: the options it was given, the image state (config and
layer chain) each step starts from and leaves, and a stage's progress.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.imagebuild.cache import canonical
from orchestrator.imagebuild.dockerfile import Stage
from runtime.image.layers import LayerInfo

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class BuildOptions:
    context: Path
    dockerfile: Path | None = None  # default: CONTEXT/Dockerfile
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False


@dataclass
class State:
    """An image being built: its config (without rootfs) and its layers, lowest first."""

    config: dict[str, Any]
    layers: list[LayerInfo]

    @property
    def run_config(self) -> dict[str, Any]:
        value = self.config.get("config")
        if not isinstance(value, dict):
            value = {}
            self.config["config"] = value
        return value

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical(self.to_json())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "layers": [[la.blob, la.diff_id, la.size, la.media_type] for la in self.layers],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> State:
        layers = [LayerInfo(str(b), str(d), int(s), str(m)) for b, d, s, m in value["layers"]]
        return cls(dict(value["config"]), layers)

    def copy(self) -> State:
        return State(copy.deepcopy(self.config), list(self.layers))

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.run_config.get("Env") or []:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out


@dataclass
class StageRun:
    stage: Stage
    state: State
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in this stage, with values
    cmd_set: bool = False
    position: int = 1
    total: int = 1

    def subst_env(self) -> dict[str, str]:
        return {**self.args, **self.state.env()}


class BuildError(UserError):
    pass
