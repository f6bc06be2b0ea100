"""Manifests as YAML: one multi-document stream, or one file per object in a directory, which
is what ``kubectl apply -f`` reads. File names sort in the order the objects must be created
(``00-namespace-shop.yaml`` first). Each file starts with a header naming its writer, so that a
new export may replace the files of an earlier one, and never anything else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import UserError
from orchestrator.kube.base import Manifest

HEADER = "# Written by `orchestrator export kubernetes`"


class _Dumper(yaml.SafeDumper):
    """Block style for text with several lines (a config file reads as itself); no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def to_yaml(body: dict[str, Any]) -> str:
    text: str = yaml.dump(
        body,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return text


def stream(manifests: list[Manifest], stack: str) -> str:
    """All objects as one YAML stream."""
    docs = [f"{HEADER} from stack {stack}\n"]
    for m in manifests:
        docs.append("---\n" + to_yaml(m.body))
    return "".join(docs)


def file_name(index: int, manifest: Manifest) -> str:
    return f"{index:02d}-{manifest.kind.lower()}-{manifest.name}.yaml"


def check_directory(directory: Path) -> list[Path]:
    """The files of an earlier export in ``directory`` (none if it does not exist yet); refuses
    a directory that holds anything else."""
    if not directory.exists():
        return []
    if not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    earlier = []
    for entry in sorted(directory.iterdir()):
        if not (entry.is_file() and not entry.is_symlink() and _ours(entry)):
            raise UserError(
                f"{directory} holds {entry.name}, which an export did not write: "
                "write into an empty directory"
            )
        earlier.append(entry)
    return earlier


def write_directory(
    directory: Path, manifests: list[Manifest], stack: str, order: tuple[str, ...]
) -> list[Path]:
    """Write one file per object; an earlier export's files there are replaced."""
    earlier = check_directory(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in earlier:
        entry.unlink()
    written = []
    for m in manifests:
        path = directory / file_name(order.index(m.kind), m)
        text = f"{HEADER} from stack {stack}\n" + to_yaml(m.body)
        mode = 0o600 if m.sensitive else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written


def _ours(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(HEADER)) == HEADER.encode()
    except OSError:
        return False
