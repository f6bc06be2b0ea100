"""The whole output for an example stack, against a golden file (tests/data/kube/): any change
of the manifests shows as a diff. UPDATE_GOLDEN=1 rewrites the golden files."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.kube.base import ExportOptions
from orchestrator.kube.export import export_stack
from orchestrator.kube.hostfiles import HostFiles
from orchestrator.kube.output import stream
from orchestrator.stack import load_stack

from .checks import problems

DATA = Path(__file__).resolve().parents[2] / "data" / "kube"


def _check(name: str, options: ExportOptions) -> None:
    project = DATA / name
    stack = load_stack([project / "compose.yaml"], environ={})
    result = export_stack(stack, options, HostFiles())
    assert problems(result) == []
    shown = [str(n).replace(str(project), "PROJECT") for n in result.notes]
    text = stream(result.manifests, stack.name) + "".join(f"# warning: {n}\n" for n in shown)
    text += "".join(f"# push: {p.command}\n" for p in result.pushes)
    golden = DATA / f"{name}.expected.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_shop_stack() -> None:
    _check("shop", ExportOptions(namespace="shop", registry="registry.example.com/shop"))
