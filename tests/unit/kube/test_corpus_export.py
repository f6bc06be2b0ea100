"""Every real-world stack of the compose corpus that loads exports to manifests that validate
against the Kubernetes schemas (offline) and the API server's rules; the files the loader
refuses are skipped with its reason, as tests/unit/stack/test_corpus.py has them. The example
stacks of examples/, when there are any, too."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import StackError
from orchestrator.kube.base import ExportOptions
from orchestrator.kube.export import export_stack
from orchestrator.kube.hostfiles import HostFiles
from orchestrator.kube.output import stream
from orchestrator.stack import load_stack
from orchestrator.stack.yamlsafe import parse_yaml_text

from .checks import problems

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / "tests" / "data" / "compose-corpus" / "awesome-compose"
FILES = sorted(CORPUS.glob("*.yaml"))
EXAMPLES = (
    sorted(
        p
        for p in (REPO / "examples").glob("**/*.y*ml")
        if p.name.endswith(("compose.yaml", "compose.yml", "stack.yaml"))
    )
    if (REPO / "examples").is_dir()
    else []
)
ENV = {"PLEX_MEDIA_PATH": "/srv/media"}  # as test_corpus.py: plex mounts it


def _export(path: Path, **options: str) -> None:
    try:
        stack = load_stack([path], environ=ENV)
    except StackError as exc:
        pytest.skip(f"the loader refuses it: {exc.message}")
    result = export_stack(stack, ExportOptions(**options), HostFiles())
    assert result.manifests
    assert problems(result) == []
    # The stream reads back as the same objects.
    docs = stream(result.manifests, stack.name).split("\n---\n")[1:]
    assert [parse_yaml_text(d).data for d in docs] == [m.body for m in result.manifests]


def test_corpus_is_there() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[f.name.removesuffix(".compose.yaml") for f in FILES])
def test_corpus_file_exports_and_validates(path: Path) -> None:
    _export(path)


@pytest.mark.parametrize("path", FILES, ids=[f.name.removesuffix(".compose.yaml") for f in FILES])
def test_corpus_file_exports_into_a_namespace_with_a_registry(path: Path) -> None:
    _export(path, namespace="prod", registry="registry.example.com/team")


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(REPO)) for p in EXAMPLES])
def test_example_stack_exports_and_validates(path: Path) -> None:
    _export(path)


def test_corpus_exports_count() -> None:
    """How many corpus files export: all but the loader's two refusals."""
    exported = 0
    for path in FILES:
        try:
            stack = load_stack([path], environ=ENV)
        except StackError:
            continue
        if not problems(export_stack(stack, ExportOptions(), HostFiles())):
            exported += 1
    assert exported == len(FILES) - 2
