"""docs/stack-file.md is checked against schemas/stack.schema.json: every key the schema
accepts has its row, every key it refuses is listed as not supported, and nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "stack-file.md").read_text()
SCHEMA = json.loads((REPO / "schemas" / "stack.schema.json").read_text())

SECTIONS = {
    "Top level": SCHEMA,
    "Services": SCHEMA["$defs"]["service"],
    "Networks": SCHEMA["$defs"]["network"],
    "Volumes": SCHEMA["$defs"]["volume"],
    "Secrets": SCHEMA["$defs"]["secret"],
    "Configs": SCHEMA["$defs"]["config"],
}


def _properties(definition: dict[str, Any]) -> dict[str, Any]:
    if "properties" in definition:
        return dict(definition["properties"])
    for branch in definition.get("anyOf", []):
        if "properties" in branch:
            return dict(branch["properties"])
    raise AssertionError("no properties")


def _section(title: str) -> str:
    start = DOC.index(f"## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end >= 0 else len(DOC)]


@pytest.mark.parametrize("title", list(SECTIONS))
def test_the_reference_lists_exactly_the_schemas_keys(title: str) -> None:
    properties = _properties(SECTIONS[title])
    supported = {k for k, v in properties.items() if not v.get("x-unsupported")}
    unsupported = {k for k, v in properties.items() if v.get("x-unsupported")}
    text = _section(title)
    rows = set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, re.MULTILINE))
    assert rows == supported
    listed = re.search(r"Not supported: (.*?)\.\n", text, re.DOTALL)
    refused = set(re.findall(r"`([a-z_0-9]+)`", listed.group(1))) if listed else set()
    assert refused == unsupported
