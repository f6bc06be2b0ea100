"""Fixtures for the export tests: write a stack into a temporary project, load it and export
it, with the project's own files readable (bind mounts, secrets) or made up."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.kube.base import ExportOptions, ExportResult, Manifest
from orchestrator.kube.export import export_stack
from orchestrator.kube.hostfiles import HostFiles
from orchestrator.stack import load_stack

from .checks import problems

Export = Callable[..., ExportResult]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "shop"
    directory.mkdir()
    return directory


@pytest.fixture
def export(project: Path) -> Export:
    """``export(yaml_text, files={"a.conf": "..."}, modes={"a.sh": 0o755}, namespace=...,
    registry=...)``: the result, checked against the schemas and the API server's rules."""

    def _export(
        text: str,
        files: dict[str, str | bytes] | None = None,
        profiles: list[str] | None = None,
        modes: dict[str, int] | None = None,
        **options: Any,
    ) -> ExportResult:
        for name, content in (files or {}).items():
            path = project / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
            path.chmod((modes or {}).get(name, 0o644))
        (project / "compose.yaml").write_text(textwrap.dedent(text))
        stack = load_stack([str(project / "compose.yaml")], environ={}, profiles=profiles)
        result = export_stack(stack, ExportOptions(**options), HostFiles())
        assert problems(result) == []
        return result

    return _export


def get(result: ExportResult, kind: str, name: str) -> dict[str, Any]:
    found = [m for m in result.manifests if m.kind == kind and m.name == name]
    assert found, f"no {kind}/{name} in {[f'{m.kind}/{m.name}' for m in result.manifests]}"
    return found[0].body


def kinds(result: ExportResult) -> list[str]:
    return [f"{m.kind}/{m.name}" for m in result.manifests]


def pod(result: ExportResult, name: str) -> dict[str, Any]:
    """The pod spec of a service's workload, whichever kind it is."""
    for m in result.manifests:
        if m.name == name and m.kind in ("Deployment", "StatefulSet", "Job"):
            spec: dict[str, Any] = m.body["spec"]["template"]["spec"]
            return spec
    raise AssertionError(f"no workload {name}")


def container(result: ExportResult, name: str) -> dict[str, Any]:
    c: dict[str, Any] = pod(result, name)["containers"][0]
    return c


def notes(result: ExportResult) -> dict[str, str]:
    return {n.path: n.message for n in result.notes}


def manifest(result: ExportResult, kind: str, name: str) -> Manifest:
    return next(m for m in result.manifests if m.kind == kind and m.name == name)
